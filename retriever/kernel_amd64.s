//go:build amd64 && !purego

#include "textflag.h"

// func dot4x3FMA(q0, q1, q2, q3, p0, p1, p2 *float32, n int, out *[12]float32)
//
// Inner products of four queries with three passages over the first n
// floats (n a multiple of 8): twelve ymm accumulators, lane l summing
// elements l, l+8, l+16, ... with fused multiply-adds, then each
// accumulator reduced by the same tree (VHADDPS twice, high half added to
// low). out[4j+i] is query i against passage j. The result for a pair
// depends only on the two vectors, never on the slot they take.
TEXT ·dot4x3FMA(SB), NOSPLIT, $0-72
	MOVQ q0+0(FP), AX
	MOVQ q1+8(FP), BX
	MOVQ q2+16(FP), CX
	MOVQ q3+24(FP), DX
	MOVQ p0+32(FP), SI
	MOVQ p1+40(FP), DI
	MOVQ p2+48(FP), R8
	MOVQ n+56(FP), R9
	MOVQ out+64(FP), R10
	SHLQ $2, R9
	XORQ R11, R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

loop:
	CMPQ R11, R9
	JGE  reduce
	VMOVUPS (SI)(R11*1), Y12
	VMOVUPS (DI)(R11*1), Y13
	VMOVUPS (R8)(R11*1), Y14
	VMOVUPS (AX)(R11*1), Y15
	VFMADD231PS Y12, Y15, Y0
	VFMADD231PS Y13, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VMOVUPS (BX)(R11*1), Y15
	VFMADD231PS Y12, Y15, Y3
	VFMADD231PS Y13, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VMOVUPS (CX)(R11*1), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VMOVUPS (DX)(R11*1), Y15
	VFMADD231PS Y12, Y15, Y9
	VFMADD231PS Y13, Y15, Y10
	VFMADD231PS Y14, Y15, Y11
	ADDQ $32, R11
	JMP  loop

reduce:
	// Passage 0: Y0 (q0), Y3 (q1), Y6 (q2), Y9 (q3).
	VHADDPS Y3, Y0, Y12
	VHADDPS Y9, Y6, Y13
	VHADDPS Y13, Y12, Y12
	VEXTRACTF128 $1, Y12, X13
	VADDPS X13, X12, X12
	VMOVUPS X12, 0(R10)
	// Passage 1: Y1, Y4, Y7, Y10.
	VHADDPS Y4, Y1, Y12
	VHADDPS Y10, Y7, Y13
	VHADDPS Y13, Y12, Y12
	VEXTRACTF128 $1, Y12, X13
	VADDPS X13, X12, X12
	VMOVUPS X12, 16(R10)
	// Passage 2: Y2, Y5, Y8, Y11.
	VHADDPS Y5, Y2, Y12
	VHADDPS Y11, Y8, Y13
	VHADDPS Y13, Y12, Y12
	VEXTRACTF128 $1, Y12, X13
	VADDPS X13, X12, X12
	VMOVUPS X12, 32(R10)
	VZEROUPPER
	RET
