;; SIMD kernels for the full-vocabulary passes of @gen/sampling (WebAssembly 128-bit SIMD).
;;
;; Compiled by scripts/build-wasm.ts (wabt, SIMD enabled) into src/wasm/kernels-bytes.ts; edit this file, then run
;; `node --import tsx scripts/build-wasm.ts` from packages/sampling. src/wasm/kernels.ts instantiates the module and
;; lays out its memory; the sampler (src/sampler.ts) decides which kernel runs when.
;;
;; Conventions:
;; - Pointers are byte offsets into the exported memory. `n` is a row length padded to a multiple of 16; the caller
;;   fills the padding with -Infinity, which every kernel treats as "no token" (exp 0, never a maximum, never kept).
;; - A row is float32 logits `s`. Kernels that exponentiate take the row maximum `max` and `scale` (1 / temperature)
;;   and work on x = (s - max) * scale <= 0, in float32.
;; - exp(x) is a float32 polynomial: x is clamped below at -87 (so -Infinity and NaN give exp(-87) ~ 1.6e-38 in the
;;   sums, and exactly 0 wherever exps are stored: those kernels mask lanes with !(x >= -87)), split as
;;   x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite, ln2 in two parts), exp(r) by a degree-6 polynomial (near-minimax
;;   relative fit on [-ln2/2, ln2/2], error ~2e-9 in exact arithmetic, ~1e-7 with float32 rounding), and 2^n added
;;   to the exponent bits. n comes from the 1.5 * 2^23 rounding trick: the low bits of (x log2(e) + 1.5 * 2^23) are
;;   n, so shifting them left by 23 gives n in the exponent field. V8 does not inline wasm calls, so the exp is
;;   written out where it is used, four vectors (16 lanes) per loop iteration.
;; - Sums of exps add four vectors in float32, then promote to float64 and accumulate there.
(module
  (memory (export "memory") 1)

  ;; Second results of `expPass` (sum of exp(x) * x) and `topN` (number of ids tied with the n-th value).
  (global $weighted (export "weighted") (mut f64) (f64.const 0))
  (global $tieCount (export "tieCount") (mut i32) (i32.const 0))

  ;; Largest lane of a vector without NaN.
  (func $hmax (param $a v128) (result f32)
    (f32.max
      (f32.max (f32x4.extract_lane 0 (local.get $a)) (f32x4.extract_lane 1 (local.get $a)))
      (f32.max (f32x4.extract_lane 2 (local.get $a)) (f32x4.extract_lane 3 (local.get $a)))))

  ;; Sum of the four lanes of two float64x2 accumulators.
  (func $hsum (param $a v128) (param $b v128) (result f64)
    (local.set $a (f64x2.add (local.get $a) (local.get $b)))
    (f64.add (f64x2.extract_lane 0 (local.get $a)) (f64x2.extract_lane 1 (local.get $a))))

  ;; max(p, n): largest value of row[0, n), NaN ignored (-Infinity when every value is -Infinity or NaN).
  ;; f32x4.pmax(acc, v) is `acc < v ? v : acc`: with the accumulator first, a NaN lane keeps the accumulator.
  (func $max (export "max") (param $p i32) (param $n i32) (result f32)
    (local $end i32) (local $a v128) (local $b v128) (local $c v128) (local $d v128)
    (local.set $a (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $b (local.get $a))
    (local.set $c (local.get $a))
    (local.set $d (local.get $a))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $a (f32x4.pmax (local.get $a) (v128.load offset=0 (local.get $p))))
        (local.set $b (f32x4.pmax (local.get $b) (v128.load offset=16 (local.get $p))))
        (local.set $c (f32x4.pmax (local.get $c) (v128.load offset=32 (local.get $p))))
        (local.set $d (f32x4.pmax (local.get $d) (v128.load offset=48 (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $next)))
    (call $hmax (f32x4.pmax (f32x4.pmax (local.get $a) (local.get $b)) (f32x4.pmax (local.get $c) (local.get $d)))))

  ;; argmax(p, n): index of the first maximum of row[0, n) (lowest id on ties, NaN ignored); -1 when there is
  ;; none (every value -Infinity or NaN). One max pass, then a scan for the first lane equal to it.
  (func (export "argmax") (param $p i32) (param $n i32) (result i32)
    (local $m f32) (local $M v128) (local $i i32) (local $q i32) (local $j i32)
    (local.set $m (call $max (local.get $p) (local.get $n)))
    (if (f32.eq (local.get $m) (f32.const -inf)) (then (return (i32.const -1))))
    (local.set $M (f32x4.splat (local.get $m)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $q (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
        (if (v128.any_true
              (v128.or
                (v128.or (f32x4.eq (v128.load offset=0 (local.get $q)) (local.get $M))
                         (f32x4.eq (v128.load offset=16 (local.get $q)) (local.get $M)))
                (v128.or (f32x4.eq (v128.load offset=32 (local.get $q)) (local.get $M))
                         (f32x4.eq (v128.load offset=48 (local.get $q)) (local.get $M)))))
          (then
            (local.set $j (i32.const 0))
            (loop $lane
              (if (f32.eq (f32.load (i32.add (local.get $q) (i32.shl (local.get $j) (i32.const 2)))) (local.get $m))
                (then (return (i32.add (local.get $i) (local.get $j)))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $lane (i32.lt_u (local.get $j) (i32.const 16))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
    (i32.const -1))

  ;; sumExp(p, n, max, scale): sum of exp((row[i] - max) * scale) over row[0, n), accumulated in float64.
  ;; -Infinity and NaN entries contribute exp(-87) ~ 1.6e-38 each (nothing at float32 precision).
  (func (export "sumExp") (param $p i32) (param $n i32) (param $max f32) (param $scale f32) (result f64)
    (local $end i32) (local $M v128) (local $S v128) (local $FLOOR v128) (local $LOG2E v128) (local $MAGIC v128)
    (local $LN2HI v128) (local $LN2LO v128) (local $C6 v128) (local $C5 v128) (local $C4 v128) (local $C3 v128)
    (local $C2 v128) (local $ONE v128) (local $acc0 v128) (local $acc1 v128) (local $s v128)
    (local $x0 v128) (local $k0 v128) (local $t0 v128) (local $r0 v128)
    (local $x1 v128) (local $k1 v128) (local $t1 v128) (local $r1 v128)
    (local $x2 v128) (local $k2 v128) (local $t2 v128) (local $r2 v128)
    (local $x3 v128) (local $k3 v128) (local $t3 v128) (local $r3 v128)
    (local.set $M (f32x4.splat (local.get $max)))
    (local.set $S (f32x4.splat (local.get $scale)))
    (local.set $FLOOR (v128.const f32x4 -87 -87 -87 -87))
    (local.set $LOG2E (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))
    (local.set $MAGIC (v128.const f32x4 12582912 12582912 12582912 12582912))
    (local.set $LN2HI (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
    (local.set $LN2LO (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))
    (local.set $C6 (v128.const f32x4 1.3843643e-3 1.3843643e-3 1.3843643e-3 1.3843643e-3))
    (local.set $C5 (v128.const f32x4 8.3741639e-3 8.3741639e-3 8.3741639e-3 8.3741639e-3))
    (local.set $C4 (v128.const f32x4 4.1668002e-2 4.1668002e-2 4.1668002e-2 4.1668002e-2))
    (local.set $C3 (v128.const f32x4 1.6666432e-1 1.6666432e-1 1.6666432e-1 1.6666432e-1))
    (local.set $C2 (v128.const f32x4 4.9999994e-1 4.9999994e-1 4.9999994e-1 4.9999994e-1))
    (local.set $ONE (v128.const f32x4 1 1 1 1))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        ;; x = max(-87, (s - max) * scale), four vectors
        (local.set $x0 (f32x4.pmax (local.get $FLOOR)
          (f32x4.mul (f32x4.sub (v128.load offset=0 (local.get $p)) (local.get $M)) (local.get $S))))
        (local.set $x1 (f32x4.pmax (local.get $FLOOR)
          (f32x4.mul (f32x4.sub (v128.load offset=16 (local.get $p)) (local.get $M)) (local.get $S))))
        (local.set $x2 (f32x4.pmax (local.get $FLOOR)
          (f32x4.mul (f32x4.sub (v128.load offset=32 (local.get $p)) (local.get $M)) (local.get $S))))
        (local.set $x3 (f32x4.pmax (local.get $FLOOR)
          (f32x4.mul (f32x4.sub (v128.load offset=48 (local.get $p)) (local.get $M)) (local.get $S))))
        ;; k = x log2(e) + 1.5 * 2^23 (low bits: n = round(x / ln2)); t = n as float; r = x - n ln2
        (local.set $k0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $t0 (f32x4.sub (local.get $k0) (local.get $MAGIC)))
        (local.set $t1 (f32x4.sub (local.get $k1) (local.get $MAGIC)))
        (local.set $t2 (f32x4.sub (local.get $k2) (local.get $MAGIC)))
        (local.set $t3 (f32x4.sub (local.get $k3) (local.get $MAGIC)))
        (local.set $r0 (f32x4.sub (f32x4.sub (local.get $x0) (f32x4.mul (local.get $t0) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t0) (local.get $LN2LO))))
        (local.set $r1 (f32x4.sub (f32x4.sub (local.get $x1) (f32x4.mul (local.get $t1) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t1) (local.get $LN2LO))))
        (local.set $r2 (f32x4.sub (f32x4.sub (local.get $x2) (f32x4.mul (local.get $t2) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t2) (local.get $LN2LO))))
        (local.set $r3 (f32x4.sub (f32x4.sub (local.get $x3) (f32x4.mul (local.get $t3) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t3) (local.get $LN2LO))))
        ;; exp(r) by Horner: ((((((C6 r + C5) r + C4) r + C3) r + C2) r + 1) r + 1), reusing x as the accumulator
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $r0) (local.get $C6)) (local.get $C5)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $r1) (local.get $C6)) (local.get $C5)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $r2) (local.get $C6)) (local.get $C5)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $r3) (local.get $C6)) (local.get $C5)))
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $r0)) (local.get $C4)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $r1)) (local.get $C4)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $r2)) (local.get $C4)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $r3)) (local.get $C4)))
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $r0)) (local.get $C3)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $r1)) (local.get $C3)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $r2)) (local.get $C3)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $r3)) (local.get $C3)))
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $r0)) (local.get $C2)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $r1)) (local.get $C2)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $r2)) (local.get $C2)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $r3)) (local.get $C2)))
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $r0)) (local.get $ONE)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $r1)) (local.get $ONE)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $r2)) (local.get $ONE)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $r3)) (local.get $ONE)))
        (local.set $x0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $r0)) (local.get $ONE)))
        (local.set $x1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $r1)) (local.get $ONE)))
        (local.set $x2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $r2)) (local.get $ONE)))
        (local.set $x3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $r3)) (local.get $ONE)))
        ;; times 2^n: add n << 23 to the exponent bits; sum the four vectors in float32
        (local.set $s
          (f32x4.add
            (f32x4.add (i32x4.add (local.get $x0) (i32x4.shl (local.get $k0) (i32.const 23)))
                       (i32x4.add (local.get $x1) (i32x4.shl (local.get $k1) (i32.const 23))))
            (f32x4.add (i32x4.add (local.get $x2) (i32x4.shl (local.get $k2) (i32.const 23)))
                       (i32x4.add (local.get $x3) (i32x4.shl (local.get $k3) (i32.const 23))))))
        ;; promote lanes 0-1 and 2-3 to float64 and accumulate
        (local.set $acc0 (f64x2.add (local.get $acc0) (f64x2.promote_low_f32x4 (local.get $s))))
        (local.set $acc1 (f64x2.add (local.get $acc1) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s)))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $next)))
    (call $hsum (local.get $acc0) (local.get $acc1)))

  ;; expPass(p, e, b, n, max, scale, lo, mode): stores e[i] = exp((row[i] - max) * scale) (float32; exactly 0 where
  ;; that is below exp(-87), -Infinity or NaN, and where row[i] < lo) and returns their sum (float64). Mode bits:
  ;;   1: also store the bucket of each token, b[i] = min(round(-x * 32), 2047) as uint16 (2047 where e[i] = 0);
;;      rounded with the 1.5 * 2^23 trick rather than truncated: any quantization that is monotone in x serves
;;      the bucketing (equal logits share a bucket, larger logits never get a larger bucket);
  ;;   2: also sum e[i] * x[i] into the global `weighted` (for the entropy of typical_p);
  ;;   4: skip 16-lane blocks with no row[i] >= lo (their exps are stored as 0 without computing them).
  (func (export "expPass")
    (param $p i32) (param $e i32) (param $b i32) (param $n i32) (param $max f32) (param $scale f32) (param $lo f32)
    (param $mode i32) (result f64)
    (local $end i32) (local $M v128) (local $S v128) (local $LO v128) (local $FLOOR v128) (local $LOG2E v128)
    (local $MAGIC v128) (local $LN2HI v128) (local $LN2LO v128) (local $C6 v128) (local $C5 v128) (local $C4 v128)
    (local $C3 v128) (local $C2 v128) (local $ONE v128) (local $TOP v128) (local $M32 v128)
    (local $acc0 v128) (local $acc1 v128) (local $w0 v128) (local $w1 v128) (local $s v128)
    (local $v0 v128) (local $x0 v128) (local $k0 v128) (local $t0 v128) (local $r0 v128)
    (local $v1 v128) (local $x1 v128) (local $k1 v128) (local $t1 v128) (local $r1 v128)
    (local $v2 v128) (local $x2 v128) (local $k2 v128) (local $t2 v128) (local $r2 v128)
    (local $v3 v128) (local $x3 v128) (local $k3 v128) (local $t3 v128) (local $r3 v128)
    (local.set $M (f32x4.splat (local.get $max)))
    (local.set $S (f32x4.splat (local.get $scale)))
    (local.set $LO (f32x4.splat (local.get $lo)))
    (local.set $FLOOR (v128.const f32x4 -87 -87 -87 -87))
    (local.set $LOG2E (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))
    (local.set $MAGIC (v128.const f32x4 12582912 12582912 12582912 12582912))
    (local.set $LN2HI (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375))
    (local.set $LN2LO (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))
    (local.set $C6 (v128.const f32x4 1.3843643e-3 1.3843643e-3 1.3843643e-3 1.3843643e-3))
    (local.set $C5 (v128.const f32x4 8.3741639e-3 8.3741639e-3 8.3741639e-3 8.3741639e-3))
    (local.set $C4 (v128.const f32x4 4.1668002e-2 4.1668002e-2 4.1668002e-2 4.1668002e-2))
    (local.set $C3 (v128.const f32x4 1.6666432e-1 1.6666432e-1 1.6666432e-1 1.6666432e-1))
    (local.set $C2 (v128.const f32x4 4.9999994e-1 4.9999994e-1 4.9999994e-1 4.9999994e-1))
    (local.set $ONE (v128.const f32x4 1 1 1 1))
    (local.set $TOP (v128.const i32x4 2047 2047 2047 2047))
    (local.set $M32 (v128.const f32x4 -32 -32 -32 -32))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v0 (v128.load offset=0 (local.get $p)))
        (local.set $v1 (v128.load offset=16 (local.get $p)))
        (local.set $v2 (v128.load offset=32 (local.get $p)))
        (local.set $v3 (v128.load offset=48 (local.get $p)))
        (if (i32.and (i32.ne (i32.and (local.get $mode) (i32.const 4)) (i32.const 0))
                     (i32.eqz (v128.any_true
                       (v128.or (v128.or (f32x4.ge (local.get $v0) (local.get $LO)) (f32x4.ge (local.get $v1) (local.get $LO)))
                                (v128.or (f32x4.ge (local.get $v2) (local.get $LO)) (f32x4.ge (local.get $v3) (local.get $LO)))))))
          (then
            (v128.store offset=0 (local.get $e) (v128.const i32x4 0 0 0 0))
            (v128.store offset=16 (local.get $e) (v128.const i32x4 0 0 0 0))
            (v128.store offset=32 (local.get $e) (v128.const i32x4 0 0 0 0))
            (v128.store offset=48 (local.get $e) (v128.const i32x4 0 0 0 0))
            (local.set $p (i32.add (local.get $p) (i32.const 64)))
            (local.set $e (i32.add (local.get $e) (i32.const 64)))
            (local.set $b (i32.add (local.get $b) (i32.const 32)))
            (br $next)))
        ;; x = (s - max) * scale (unclamped: the bucket and the validity mask need it)
        (local.set $x0 (f32x4.mul (f32x4.sub (local.get $v0) (local.get $M)) (local.get $S)))
        (local.set $x1 (f32x4.mul (f32x4.sub (local.get $v1) (local.get $M)) (local.get $S)))
        (local.set $x2 (f32x4.mul (f32x4.sub (local.get $v2) (local.get $M)) (local.get $S)))
        (local.set $x3 (f32x4.mul (f32x4.sub (local.get $v3) (local.get $M)) (local.get $S)))
        ;; v = validity mask: x >= -87 (false for NaN and -Infinity) and s >= lo
        (local.set $v0 (v128.and (f32x4.ge (local.get $x0) (local.get $FLOOR)) (f32x4.ge (local.get $v0) (local.get $LO))))
        (local.set $v1 (v128.and (f32x4.ge (local.get $x1) (local.get $FLOOR)) (f32x4.ge (local.get $v1) (local.get $LO))))
        (local.set $v2 (v128.and (f32x4.ge (local.get $x2) (local.get $FLOOR)) (f32x4.ge (local.get $v2) (local.get $LO))))
        (local.set $v3 (v128.and (f32x4.ge (local.get $x3) (local.get $FLOOR)) (f32x4.ge (local.get $v3) (local.get $LO))))
        (if (i32.and (local.get $mode) (i32.const 1))
          (then
            ;; buckets: min(round(x * -32), 2047), 2047 where invalid; narrowed to uint16, eight per store
            (v128.store offset=0 (local.get $b)
              (i16x8.narrow_i32x4_u
                (v128.bitselect
                  (i32x4.min_s (i32x4.sub (f32x4.add (f32x4.mul (local.get $x0) (local.get $M32)) (local.get $MAGIC))
                                          (local.get $MAGIC))
                               (local.get $TOP))
                  (local.get $TOP) (local.get $v0))
                (v128.bitselect
                  (i32x4.min_s (i32x4.sub (f32x4.add (f32x4.mul (local.get $x1) (local.get $M32)) (local.get $MAGIC))
                                          (local.get $MAGIC))
                               (local.get $TOP))
                  (local.get $TOP) (local.get $v1))))
            (v128.store offset=16 (local.get $b)
              (i16x8.narrow_i32x4_u
                (v128.bitselect
                  (i32x4.min_s (i32x4.sub (f32x4.add (f32x4.mul (local.get $x2) (local.get $M32)) (local.get $MAGIC))
                                          (local.get $MAGIC))
                               (local.get $TOP))
                  (local.get $TOP) (local.get $v2))
                (v128.bitselect
                  (i32x4.min_s (i32x4.sub (f32x4.add (f32x4.mul (local.get $x3) (local.get $M32)) (local.get $MAGIC))
                                          (local.get $MAGIC))
                               (local.get $TOP))
                  (local.get $TOP) (local.get $v3))))))
        (local.set $x0 (f32x4.pmax (local.get $FLOOR) (local.get $x0)))
        (local.set $x1 (f32x4.pmax (local.get $FLOOR) (local.get $x1)))
        (local.set $x2 (f32x4.pmax (local.get $FLOOR) (local.get $x2)))
        (local.set $x3 (f32x4.pmax (local.get $FLOOR) (local.get $x3)))
        (local.set $k0 (f32x4.add (f32x4.mul (local.get $x0) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k1 (f32x4.add (f32x4.mul (local.get $x1) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k2 (f32x4.add (f32x4.mul (local.get $x2) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $k3 (f32x4.add (f32x4.mul (local.get $x3) (local.get $LOG2E)) (local.get $MAGIC)))
        (local.set $t0 (f32x4.sub (local.get $k0) (local.get $MAGIC)))
        (local.set $t1 (f32x4.sub (local.get $k1) (local.get $MAGIC)))
        (local.set $t2 (f32x4.sub (local.get $k2) (local.get $MAGIC)))
        (local.set $t3 (f32x4.sub (local.get $k3) (local.get $MAGIC)))
        (local.set $r0 (f32x4.sub (f32x4.sub (local.get $x0) (f32x4.mul (local.get $t0) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t0) (local.get $LN2LO))))
        (local.set $r1 (f32x4.sub (f32x4.sub (local.get $x1) (f32x4.mul (local.get $t1) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t1) (local.get $LN2LO))))
        (local.set $r2 (f32x4.sub (f32x4.sub (local.get $x2) (f32x4.mul (local.get $t2) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t2) (local.get $LN2LO))))
        (local.set $r3 (f32x4.sub (f32x4.sub (local.get $x3) (f32x4.mul (local.get $t3) (local.get $LN2HI)))
                                  (f32x4.mul (local.get $t3) (local.get $LN2LO))))
        ;; Horner into t (x is still needed for the weighted sum)
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $r0) (local.get $C6)) (local.get $C5)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $r1) (local.get $C6)) (local.get $C5)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $r2) (local.get $C6)) (local.get $C5)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $r3) (local.get $C6)) (local.get $C5)))
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $t0) (local.get $r0)) (local.get $C4)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $t1) (local.get $r1)) (local.get $C4)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $t2) (local.get $r2)) (local.get $C4)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $t3) (local.get $r3)) (local.get $C4)))
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $t0) (local.get $r0)) (local.get $C3)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $t1) (local.get $r1)) (local.get $C3)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $t2) (local.get $r2)) (local.get $C3)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $t3) (local.get $r3)) (local.get $C3)))
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $t0) (local.get $r0)) (local.get $C2)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $t1) (local.get $r1)) (local.get $C2)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $t2) (local.get $r2)) (local.get $C2)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $t3) (local.get $r3)) (local.get $C2)))
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $t0) (local.get $r0)) (local.get $ONE)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $t1) (local.get $r1)) (local.get $ONE)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $t2) (local.get $r2)) (local.get $ONE)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $t3) (local.get $r3)) (local.get $ONE)))
        (local.set $t0 (f32x4.add (f32x4.mul (local.get $t0) (local.get $r0)) (local.get $ONE)))
        (local.set $t1 (f32x4.add (f32x4.mul (local.get $t1) (local.get $r1)) (local.get $ONE)))
        (local.set $t2 (f32x4.add (f32x4.mul (local.get $t2) (local.get $r2)) (local.get $ONE)))
        (local.set $t3 (f32x4.add (f32x4.mul (local.get $t3) (local.get $r3)) (local.get $ONE)))
        ;; times 2^n, masked by validity: k becomes the exps
        (local.set $k0 (v128.and (i32x4.add (local.get $t0) (i32x4.shl (local.get $k0) (i32.const 23))) (local.get $v0)))
        (local.set $k1 (v128.and (i32x4.add (local.get $t1) (i32x4.shl (local.get $k1) (i32.const 23))) (local.get $v1)))
        (local.set $k2 (v128.and (i32x4.add (local.get $t2) (i32x4.shl (local.get $k2) (i32.const 23))) (local.get $v2)))
        (local.set $k3 (v128.and (i32x4.add (local.get $t3) (i32x4.shl (local.get $k3) (i32.const 23))) (local.get $v3)))
        (v128.store offset=0 (local.get $e) (local.get $k0))
        (v128.store offset=16 (local.get $e) (local.get $k1))
        (v128.store offset=32 (local.get $e) (local.get $k2))
        (v128.store offset=48 (local.get $e) (local.get $k3))
        (local.set $s (f32x4.add (f32x4.add (local.get $k0) (local.get $k1)) (f32x4.add (local.get $k2) (local.get $k3))))
        (local.set $acc0 (f64x2.add (local.get $acc0) (f64x2.promote_low_f32x4 (local.get $s))))
        (local.set $acc1 (f64x2.add (local.get $acc1) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s)))))
        (if (i32.and (local.get $mode) (i32.const 2))
          (then
            ;; e * x with the clamped x (0 * -87 = 0 where the exp is masked)
            (local.set $s
              (f32x4.add
                (f32x4.add (f32x4.mul (local.get $k0) (local.get $x0)) (f32x4.mul (local.get $k1) (local.get $x1)))
                (f32x4.add (f32x4.mul (local.get $k2) (local.get $x2)) (f32x4.mul (local.get $k3) (local.get $x3)))))
            (local.set $w0 (f64x2.add (local.get $w0) (f64x2.promote_low_f32x4 (local.get $s))))
            (local.set $w1 (f64x2.add (local.get $w1) (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (local.set $e (i32.add (local.get $e) (i32.const 64)))
        (local.set $b (i32.add (local.get $b) (i32.const 32)))
        (br $next)))
    (global.set $weighted (call $hsum (local.get $w0) (local.get $w1)))
    (call $hsum (local.get $acc0) (local.get $acc1)))

  ;; scatter(b, e, mass, n, below): mass[b[i]] += e[i] (float64 mass per bucket, uint16 buckets, float32 exps),
  ;; over the 16-lane blocks that hold at least one bucket < below (all of them when below >= 2048). The masses of
  ;; the buckets < below are then complete; the others may not be.
  (func (export "scatter") (param $b i32) (param $e i32) (param $mass i32) (param $n i32) (param $below i32)
    (local $end i32) (local $a i32) (local $j i32) (local $B v128) (local $all i32)
    (local.set $B (i16x8.splat (local.get $below)))
    (local.set $all (i32.ge_u (local.get $below) (i32.const 2048)))
    (local.set $end (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $b) (local.get $end)))
        (if (i32.or (local.get $all)
                    (v128.any_true (v128.or (i16x8.lt_u (v128.load offset=0 (local.get $b)) (local.get $B))
                                            (i16x8.lt_u (v128.load offset=16 (local.get $b)) (local.get $B)))))
          (then
            (local.set $j (i32.const 0))
            (loop $four
              (local.set $a (i32.add (local.get $mass) (i32.shl (i32.load16_u offset=0 (local.get $b)) (i32.const 3))))
              (f64.store (local.get $a)
                (f64.add (f64.load (local.get $a)) (f64.promote_f32 (f32.load offset=0 (local.get $e)))))
              (local.set $a (i32.add (local.get $mass) (i32.shl (i32.load16_u offset=2 (local.get $b)) (i32.const 3))))
              (f64.store (local.get $a)
                (f64.add (f64.load (local.get $a)) (f64.promote_f32 (f32.load offset=4 (local.get $e)))))
              (local.set $a (i32.add (local.get $mass) (i32.shl (i32.load16_u offset=4 (local.get $b)) (i32.const 3))))
              (f64.store (local.get $a)
                (f64.add (f64.load (local.get $a)) (f64.promote_f32 (f32.load offset=8 (local.get $e)))))
              (local.set $a (i32.add (local.get $mass) (i32.shl (i32.load16_u offset=6 (local.get $b)) (i32.const 3))))
              (f64.store (local.get $a)
                (f64.add (f64.load (local.get $a)) (f64.promote_f32 (f32.load offset=12 (local.get $e)))))
              (local.set $b (i32.add (local.get $b) (i32.const 8)))
              (local.set $e (i32.add (local.get $e) (i32.const 16)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $four (i32.lt_u (local.get $j) (i32.const 4)))))
          (else
            (local.set $b (i32.add (local.get $b) (i32.const 32)))
            (local.set $e (i32.add (local.get $e) (i32.const 64)))))
        (br $next))))

  ;; distBuckets(p, e, b, n, max, scale, mean): typical_p buckets. In float64, exactly as the JS path computes it,
  ;; d = |(s - max) * scale - mean|; b[i] = min(trunc(d * 32), 2047), or 2047 where e[i] = 0 (uint16).
  (func (export "distBuckets")
    (param $p i32) (param $e i32) (param $b i32) (param $n i32) (param $max f64) (param $scale f64) (param $mean f64)
    (local $end i32) (local $M v128) (local $S v128) (local $MEAN v128) (local $K32 v128) (local $TOP v128)
    (local $ZERO v128) (local $v v128) (local $lo v128) (local $hi v128)
    (local.set $M (f64x2.splat (local.get $max)))
    (local.set $S (f64x2.splat (local.get $scale)))
    (local.set $MEAN (f64x2.splat (local.get $mean)))
    (local.set $K32 (v128.const f64x2 32 32))
    (local.set $TOP (v128.const i32x4 2047 2047 2047 2047))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        ;; lanes 0-3
        (local.set $v (v128.load offset=0 (local.get $p)))
        (local.set $lo
          (v128.bitselect
            (i32x4.min_s
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                (i32x4.trunc_sat_f64x2_s_zero (f64x2.mul (local.get $K32) (f64x2.abs (f64x2.sub
                  (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (local.get $M)) (local.get $S))
                  (local.get $MEAN)))))
                (i32x4.trunc_sat_f64x2_s_zero (f64x2.mul (local.get $K32) (f64x2.abs (f64x2.sub
                  (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
                    (local.get $M)) (local.get $S))
                  (local.get $MEAN))))))
              (local.get $TOP))
            (local.get $TOP)
            (f32x4.ne (v128.load offset=0 (local.get $e)) (local.get $ZERO))))
        ;; lanes 4-7
        (local.set $v (v128.load offset=16 (local.get $p)))
        (local.set $hi
          (v128.bitselect
            (i32x4.min_s
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                (i32x4.trunc_sat_f64x2_s_zero (f64x2.mul (local.get $K32) (f64x2.abs (f64x2.sub
                  (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (local.get $M)) (local.get $S))
                  (local.get $MEAN)))))
                (i32x4.trunc_sat_f64x2_s_zero (f64x2.mul (local.get $K32) (f64x2.abs (f64x2.sub
                  (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
                    (local.get $M)) (local.get $S))
                  (local.get $MEAN))))))
              (local.get $TOP))
            (local.get $TOP)
            (f32x4.ne (v128.load offset=16 (local.get $e)) (local.get $ZERO))))
        (v128.store (local.get $b) (i16x8.narrow_i32x4_u (local.get $lo) (local.get $hi)))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (local.set $e (i32.add (local.get $e) (i32.const 32)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $next))))

  ;; collect(b, n, bucket, out): the ids i < n with b[i] = bucket, ascending, as int32 at out; returns their count.
  (func (export "collect") (param $b i32) (param $n i32) (param $bucket i32) (param $out i32) (result i32)
    (local $B v128) (local $i i32) (local $j i32) (local $q i32) (local $count i32)
    (local.set $B (i16x8.splat (local.get $bucket)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $q (i32.add (local.get $b) (i32.shl (local.get $i) (i32.const 1))))
        (if (v128.any_true (v128.or (i16x8.eq (v128.load offset=0 (local.get $q)) (local.get $B))
                                    (i16x8.eq (v128.load offset=16 (local.get $q)) (local.get $B))))
          (then
            (local.set $j (i32.const 0))
            (loop $lane
              (if (i32.eq (i32.load16_u (i32.add (local.get $q) (i32.shl (local.get $j) (i32.const 1))))
                          (local.get $bucket))
                (then
                  (i32.store (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 2)))
                             (i32.add (local.get $i) (local.get $j)))
                  (local.set $count (i32.add (local.get $count) (i32.const 1)))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $lane (i32.lt_u (local.get $j) (i32.const 16))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
    (local.get $count))

  ;; Whether token `id` with logit s and exp e is kept by the cut (lo, hi, loId): lo <= s <= hi, ids at s = lo only
  ;; from loId up (top_p's tie order), and e != 0.
  (func $kept (param $s f32) (param $e f32) (param $id i32) (param $lo f32) (param $hi f32) (param $loId i32)
    (result i32)
    (i32.and
      (i32.and (f32.ge (local.get $s) (local.get $lo)) (f32.le (local.get $s) (local.get $hi)))
      (i32.and
        (i32.or (f32.gt (local.get $s) (local.get $lo)) (i32.ge_s (local.get $id) (local.get $loId)))
        (f32.ne (local.get $e) (f32.const 0)))))

  ;; draw(p, e, n, lo, hi, loId, target): walks the kept tokens in id order, adding their exps (float64), and
  ;; returns the first id at which the running sum exceeds target; the last kept id if it never does; -1 if no
  ;; token is kept. 16-lane blocks with no s >= lo are skipped whole; in the others, four lanes at a time: a vector
  ;; whose kept exps keep the running sum <= target is added whole, the one that crosses it lane by lane.
  (func (export "draw")
    (param $p i32) (param $e i32) (param $n i32) (param $lo f32) (param $hi f32) (param $loId i32) (param $target f64)
    (result i32)
    (local $LO v128) (local $HI v128) (local $LOID v128) (local $IDS v128) (local $s v128) (local $m v128)
    (local $d v128) (local $i i32) (local $end i32) (local $j i32) (local $id i32) (local $q i32) (local $chosen i32)
    (local $cumulative f64) (local $block f64) (local $x f32)
    (local.set $LO (f32x4.splat (local.get $lo)))
    (local.set $HI (f32x4.splat (local.get $hi)))
    (local.set $LOID (i32x4.splat (local.get $loId)))
    (local.set $chosen (i32.const -1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $q (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
        (if (v128.any_true
              (v128.or
                (v128.or (f32x4.ge (v128.load offset=0 (local.get $q)) (local.get $LO))
                         (f32x4.ge (v128.load offset=16 (local.get $q)) (local.get $LO)))
                (v128.or (f32x4.ge (v128.load offset=32 (local.get $q)) (local.get $LO))
                         (f32x4.ge (v128.load offset=48 (local.get $q)) (local.get $LO)))))
          (then
            (local.set $end (i32.add (local.get $i) (i32.const 16)))
            (loop $vector
              (local.set $q (i32.shl (local.get $i) (i32.const 2)))
              (local.set $s (v128.load (i32.add (local.get $p) (local.get $q))))
              (local.set $d (v128.load (i32.add (local.get $e) (local.get $q))))
              (local.set $IDS (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 1 2 3)))
              ;; kept: lo <= s <= hi, (s > lo or id >= loId), e != 0
              (local.set $m
                (v128.and
                  (v128.and (f32x4.ge (local.get $s) (local.get $LO)) (f32x4.le (local.get $s) (local.get $HI)))
                  (v128.and
                    (v128.or (f32x4.gt (local.get $s) (local.get $LO)) (i32x4.ge_s (local.get $IDS) (local.get $LOID)))
                    (f32x4.ne (local.get $d) (v128.const f32x4 0 0 0 0)))))
              (if (v128.any_true (local.get $m))
                (then
                  (local.set $d (v128.and (local.get $d) (local.get $m)))
                  (local.set $d (f64x2.add (f64x2.promote_low_f32x4 (local.get $d)) (f64x2.promote_low_f32x4
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))))
                  (local.set $block (f64.add (f64x2.extract_lane 0 (local.get $d)) (f64x2.extract_lane 1 (local.get $d))))
                  (if (f64.gt (f64.add (local.get $cumulative) (local.get $block)) (local.get $target))
                    (then
                      ;; the sum crosses target in these four lanes: one lane at a time
                      (local.set $j (i32.const 0))
                      (loop $lane
                        (local.set $id (i32.add (local.get $i) (local.get $j)))
                        (local.set $x (f32.load (i32.add (local.get $e) (i32.shl (local.get $id) (i32.const 2)))))
                        (if (call $kept (f32.load (i32.add (local.get $p) (i32.shl (local.get $id) (i32.const 2))))
                              (local.get $x) (local.get $id) (local.get $lo) (local.get $hi) (local.get $loId))
                          (then
                            (local.set $chosen (local.get $id))
                            (local.set $cumulative (f64.add (local.get $cumulative) (f64.promote_f32 (local.get $x))))
                            (if (f64.gt (local.get $cumulative) (local.get $target)) (then (return (local.get $chosen))))))
                        (local.set $j (i32.add (local.get $j) (i32.const 1)))
                        (br_if $lane (i32.lt_u (local.get $j) (i32.const 4)))))
                    (else
                      (local.set $cumulative (f64.add (local.get $cumulative) (local.get $block)))
                      ;; the highest kept lane
                      (local.set $chosen (i32.add (local.get $i)
                        (i32.sub (i32.const 31) (i32.clz (i32x4.bitmask (local.get $m))))))))))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))
              (br_if $vector (i32.lt_u (local.get $i) (local.get $end)))))
          (else (local.set $i (i32.add (local.get $i) (i32.const 16)))))
        (br $next)))
    (local.get $chosen))

  ;; keep(p, e, n, lo, hi, loId, out): the kept ids (as in `draw`), ascending, as int32 at out; returns the count.
  (func (export "keep")
    (param $p i32) (param $e i32) (param $n i32) (param $lo f32) (param $hi f32) (param $loId i32) (param $out i32)
    (result i32)
    (local $LO v128) (local $HI v128) (local $LOID v128) (local $IDS v128) (local $s v128) (local $q i32)
    (local $i i32) (local $end i32) (local $bits i32) (local $count i32)
    (local.set $LO (f32x4.splat (local.get $lo)))
    (local.set $HI (f32x4.splat (local.get $hi)))
    (local.set $LOID (i32x4.splat (local.get $loId)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $q (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
        (if (v128.any_true
              (v128.or
                (v128.or (f32x4.ge (v128.load offset=0 (local.get $q)) (local.get $LO))
                         (f32x4.ge (v128.load offset=16 (local.get $q)) (local.get $LO)))
                (v128.or (f32x4.ge (v128.load offset=32 (local.get $q)) (local.get $LO))
                         (f32x4.ge (v128.load offset=48 (local.get $q)) (local.get $LO)))))
          (then
            (local.set $end (i32.add (local.get $i) (i32.const 16)))
            (loop $vector
              (local.set $q (i32.shl (local.get $i) (i32.const 2)))
              (local.set $s (v128.load (i32.add (local.get $p) (local.get $q))))
              (local.set $IDS (i32x4.add (i32x4.splat (local.get $i)) (v128.const i32x4 0 1 2 3)))
              (local.set $bits (i32x4.bitmask
                (v128.and
                  (v128.and (f32x4.ge (local.get $s) (local.get $LO)) (f32x4.le (local.get $s) (local.get $HI)))
                  (v128.and
                    (v128.or (f32x4.gt (local.get $s) (local.get $LO)) (i32x4.ge_s (local.get $IDS) (local.get $LOID)))
                    (f32x4.ne (v128.load (i32.add (local.get $e) (local.get $q))) (v128.const f32x4 0 0 0 0))))))
              ;; one id per set bit, lowest lane first
              (block $written
                (loop $bit
                  (br_if $written (i32.eqz (local.get $bits)))
                  (i32.store (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 2)))
                    (i32.add (local.get $i) (i32.ctz (local.get $bits))))
                  (local.set $count (i32.add (local.get $count) (i32.const 1)))
                  (local.set $bits (i32.and (local.get $bits) (i32.sub (local.get $bits) (i32.const 1))))
                  (br $bit)))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))
              (br_if $vector (i32.lt_u (local.get $i) (local.get $end)))))
          (else (local.set $i (i32.add (local.get $i) (i32.const 16)))))
        (br $next)))
    (local.get $count))

  ;; topN(p, n, k, lo, hi, loId, values, ids, ties): the k largest finite values of row[0, n) among the ids with
  ;; lo <= s <= hi (at s = lo, only ids >= loId), sorted descending (ties: lower id first) into values (float32) and
  ;; ids (int32); returns how many (<= k). The ids tied with the k-th value that did not fit go to ties (int32), their
  ;; count to the global `tieCount`. Blocks of 16 lanes with no value >= the current threshold are skipped whole
  ;; (v128.any_true); the others go through a scalar insertion, the same steps as the JS path.
  (func (export "topN")
    (param $p i32) (param $n i32) (param $k i32) (param $lo f32) (param $hi f32) (param $loId i32)
    (param $values i32) (param $ids i32) (param $ties i32) (result i32)
    (local $T v128) (local $i i32) (local $j i32) (local $id i32) (local $q i32) (local $v f32) (local $size i32)
    (local $tieCount i32) (local $threshold f32) (local $position i32) (local $second f32) (local $next f32)
    (local $a i32)
    (local.set $threshold (f32.const -inf))
    (local.set $T (f32x4.splat (local.get $lo)))
    (block $done
      (loop $block
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $q (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
        (if (v128.any_true
              (v128.or
                (v128.or (f32x4.ge (v128.load offset=0 (local.get $q)) (local.get $T))
                         (f32x4.ge (v128.load offset=16 (local.get $q)) (local.get $T)))
                (v128.or (f32x4.ge (v128.load offset=32 (local.get $q)) (local.get $T))
                         (f32x4.ge (v128.load offset=48 (local.get $q)) (local.get $T)))))
          (then
            (local.set $j (i32.const 0))
            (loop $lane
              (block $skip
                (local.set $id (i32.add (local.get $i) (local.get $j)))
                (local.set $v (f32.load (i32.add (local.get $q) (i32.shl (local.get $j) (i32.const 2)))))
                (br_if $skip (i32.eqz (f32.ge (local.get $v) (local.get $threshold))))
                (br_if $skip (f32.eq (local.get $v) (f32.const -inf)))
                (br_if $skip (i32.eqz (call $kept (local.get $v) (f32.const 1) (local.get $id)
                                        (local.get $lo) (local.get $hi) (local.get $loId))))
                (if (i32.and (f32.eq (local.get $v) (local.get $threshold)) (i32.eq (local.get $size) (local.get $k)))
                  (then
                    (i32.store (i32.add (local.get $ties) (i32.shl (local.get $tieCount) (i32.const 2))) (local.get $id))
                    (local.set $tieCount (i32.add (local.get $tieCount) (i32.const 1)))
                    (br $skip)))
                (if (i32.lt_s (local.get $size) (local.get $k))
                  (then
                    (local.set $position (local.get $size))
                    (local.set $size (i32.add (local.get $size) (i32.const 1))))
                  (else
                    ;; full: the last entry is evicted; it joins the ties if the new k-th value still equals it
                    (local.set $position (i32.sub (local.get $k) (i32.const 1)))
                    (local.set $second (local.get $v))
                    (if (i32.ge_s (local.get $k) (i32.const 2))
                      (then (local.set $second
                        (f32.load (i32.add (local.get $values) (i32.shl (i32.sub (local.get $k) (i32.const 2)) (i32.const 2)))))))
                    (local.set $next (select (local.get $v) (local.get $second) (f32.lt (local.get $v) (local.get $second))))
                    (if (f32.gt (local.get $next) (local.get $threshold))
                      (then (local.set $tieCount (i32.const 0)))
                      (else
                        (i32.store (i32.add (local.get $ties) (i32.shl (local.get $tieCount) (i32.const 2)))
                          (i32.load (i32.add (local.get $ids) (i32.shl (local.get $position) (i32.const 2)))))
                        (local.set $tieCount (i32.add (local.get $tieCount) (i32.const 1)))))))
                ;; insertion: shift smaller entries down
                (block $placed
                  (loop $shift
                    (br_if $placed (i32.eqz (local.get $position)))
                    (local.set $a (i32.shl (i32.sub (local.get $position) (i32.const 1)) (i32.const 2)))
                    (br_if $placed (i32.eqz (f32.lt (f32.load (i32.add (local.get $values) (local.get $a))) (local.get $v))))
                    (f32.store offset=4 (i32.add (local.get $values) (local.get $a))
                      (f32.load (i32.add (local.get $values) (local.get $a))))
                    (i32.store offset=4 (i32.add (local.get $ids) (local.get $a))
                      (i32.load (i32.add (local.get $ids) (local.get $a))))
                    (local.set $position (i32.sub (local.get $position) (i32.const 1)))
                    (br $shift)))
                (f32.store (i32.add (local.get $values) (i32.shl (local.get $position) (i32.const 2))) (local.get $v))
                (i32.store (i32.add (local.get $ids) (i32.shl (local.get $position) (i32.const 2))) (local.get $id))
                (if (i32.eq (local.get $size) (local.get $k))
                  (then (local.set $threshold
                    (f32.load (i32.add (local.get $values) (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 2))))))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $lane (i32.lt_u (local.get $j) (i32.const 16))))
            ;; skip test for the next blocks: values >= max(threshold, lo)
            (local.set $T (f32x4.splat (f32.max (local.get $threshold) (local.get $lo))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $block)))
    (global.set $tieCount (local.get $tieCount))
    (local.get $size))
)
