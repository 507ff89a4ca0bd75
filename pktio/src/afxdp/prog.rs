//! The XDP redirect program, assembled as eBPF instructions in Rust (no C
//! toolchain, no object file).
//!
//! ```text
//!   r6 = ctx
//!   r2 = ctx->data; r3 = ctx->data_end
//!   if data + 14 > data_end            -> pass
//!   r5 = *(u16 *)(data + 12)           ; EtherType, network order
//!   if r5 == ETHERTYPE                 -> redirect
//!   if r5 != 0x8100 (802.1Q)           -> pass
//!   if data + 18 > data_end            -> pass
//!   r5 = *(u16 *)(data + 16)           ; inner EtherType
//!   if r5 != ETHERTYPE                 -> pass
//! redirect:
//!   return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)
//! pass:
//!   return XDP_PASS
//! ```
//!
//! The fallback action of `bpf_redirect_map` (the low bits of its flags) is
//! `XDP_PASS`, so a frame arriving on a queue with no socket bound still
//! reaches the kernel stack instead of being dropped.

/// XDP_PASS action.
const XDP_PASS: i32 = 2;
/// Helper id of `bpf_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `src_reg` marking a 64-bit immediate load as a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;

// Opcodes (class | size/op | source).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDX_H: u8 = 0x69; // BPF_LDX | BPF_MEM | BPF_H
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ADD64_K: u8 = 0x07; // BPF_ALU64 | BPF_ADD | BPF_K
const JGT_X: u8 = 0x2d; // BPF_JMP | BPF_JGT | BPF_X
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const LD_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// Encodes one `struct bpf_insn` as its little-endian u64.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64) | (((dst & 0xf) | ((src & 0xf) << 4)) as u64) << 8 | ((off as u16) as u64) << 16 | ((imm as u32) as u64) << 32
}

/// The program for `ethertype` redirecting into the XSKMAP `map_fd`.
pub(crate) fn redirect_program(map_fd: i32, ethertype: u16) -> Vec<u64> {
    // A u16 load reads the two network-order bytes little-endian.
    let et = ethertype.swap_bytes() as i32;
    let vlan = 0x8100u16.swap_bytes() as i32;
    // Jump offsets count instructions after the jump; the labels are fixed
    // below and checked by the unit test.
    let mut p = vec![
        insn(MOV64_X, 6, 1, 0, 0),  // 0: r6 = ctx
        insn(LDX_W, 2, 1, 0, 0),    // 1: r2 = ctx->data
        insn(LDX_W, 3, 1, 4, 0),    // 2: r3 = ctx->data_end
        insn(MOV64_X, 4, 2, 0, 0),  // 3: r4 = r2
        insn(ADD64_K, 4, 0, 0, 14), // 4: r4 += 14
        insn(JGT_X, 4, 3, 12, 0),   // 5: if r4 > r3 goto pass (18)
        insn(LDX_H, 5, 2, 12, 0),   // 6: r5 = eth type
        insn(JEQ_K, 5, 0, 6, et),   // 7: if r5 == et goto redirect (14)
        insn(JNE_K, 5, 0, 9, vlan), // 8: if r5 != 0x8100 goto pass (18)
        insn(MOV64_X, 4, 2, 0, 0),  // 9: r4 = r2
        insn(ADD64_K, 4, 0, 0, 18), // 10: r4 += 18
        insn(JGT_X, 4, 3, 6, 0),    // 11: if r4 > r3 goto pass (18)
        insn(LDX_H, 5, 2, 16, 0),   // 12: r5 = inner type
        insn(JNE_K, 5, 0, 4, et),   // 13: if r5 != et goto pass (18)
        // redirect (14):
        insn(LDX_W, 2, 6, 16, 0), // 14: r2 = ctx->rx_queue_index
        insn(LD_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // 15: r1 = map (2 slots)
        insn(0, 0, 0, 0, 0),      // 16: upper half of the imm64
        insn(MOV64_K, 3, 0, 0, XDP_PASS), // 17: r3 = XDP_PASS (fallback)
    ];
    // Correct the layout: call + exit come before `pass`.
    p.push(insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP)); // 18
    p.push(insn(EXIT, 0, 0, 0, 0)); // 19
    // pass (20):
    p.push(insn(MOV64_K, 0, 0, 0, XDP_PASS)); // 20
    p.push(insn(EXIT, 0, 0, 0, 0)); // 21
    fix_pass_jumps(&mut p, 20);
    p
}

/// Rewrites the jumps that target `pass` (written above as if it were at 18)
/// to the real label.
fn fix_pass_jumps(p: &mut [u64], pass: usize) {
    for (i, ins) in p.iter_mut().enumerate() {
        let code = (*ins & 0xff) as u8;
        if matches!(code, JGT_X | JNE_K) {
            let off = ((*ins >> 16) & 0xffff) as u16 as i16 as i64;
            if i as i64 + 1 + off == 18 {
                let new = (pass as i64 - i as i64 - 1) as i16;
                *ins = (*ins & !(0xffffu64 << 16)) | (((new as u16) as u64) << 16);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: &[u64], i: usize) -> usize {
        let off = ((p[i] >> 16) & 0xffff) as u16 as i16 as i64;
        (i as i64 + 1 + off) as usize
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let p = redirect_program(7, 0xAEFE);
        assert_eq!(p.len(), 22);
        // all "pass" jumps go to the `r0 = XDP_PASS` instruction
        for i in [5, 8, 11, 13] {
            assert_eq!(target(&p, i), 20, "insn {i}");
        }
        assert_eq!(p[20] & 0xff, MOV64_K as u64);
        assert_eq!(target(&p, 7), 14);
        assert_eq!(p[18] & 0xff, CALL as u64);
        // the map fd and the byte-swapped EtherType are encoded
        assert_eq!((p[15] >> 32) as i32, 7);
        assert_eq!((p[15] >> 12) & 0xf, BPF_PSEUDO_MAP_FD as u64);
        assert_eq!((p[7] >> 32) as i32, 0xFEAE);
    }
}
