;; The two resampling passes of shared/image/preprocess.ts in WebAssembly SIMD, for the runner's decode threads.
;; Same integers as the TypeScript passes (resampleRows, resampleColumnsToFloats): 22-bit fixed-point weights,
;; sums below 2^31, `>> 22`, the same table lookup; tests/node/resample-wasm.test.ts checks output equality and
;; that this text assembles to resample.wasm byte for byte (npm run build:wasm writes it).
;;
;; Memory is laid out by the caller (shared/image/resample-wasm.ts); every pointer below is a byte offset.
(module
  (memory (export "memory") 1)

  ;; Horizontal pass: `rows` source rows from `first_row`, each to `out_width` pixels packed as R | G << 8 | B << 16.
  ;; One pixel per vector: its RGBA bytes widened to four i32 lanes, times the tap's weight, summed.
  (func (export "rows")
    (param $pixels i32) (param $width i32) (param $first_row i32) (param $rows i32)
    (param $bounds i32) (param $weights i32) (param $taps i32) (param $out_width i32) (param $between i32)
    (local $row i32) (local $x i32) (local $p i32) (local $w i32) (local $i i32) (local $count i32)
    (local $acc v128) (local $out i32) (local $row_start i32)
    (local.set $out (local.get $between))
    (local.set $row (i32.const 0))
    (block $rows_done
      (loop $rows_loop
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $row_start
          (i32.add (local.get $pixels)
            (i32.shl (i32.mul (i32.add (local.get $first_row) (local.get $row)) (local.get $width)) (i32.const 2))))
        (local.set $x (i32.const 0))
        (block $x_done
          (loop $x_loop
            (br_if $x_done (i32.ge_u (local.get $x) (local.get $out_width)))
            (local.set $p
              (i32.add (local.get $row_start)
                (i32.shl (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $x) (i32.const 3)))) (i32.const 2))))
            (local.set $count (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $x) (i32.const 3)))))
            (local.set $w
              (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $x) (local.get $taps)) (i32.const 2))))
            (local.set $acc (i32x4.splat (i32.const 2097152)))
            (local.set $i (i32.const 0))
            (block $taps_done
              (loop $taps_loop
                (br_if $taps_done (i32.ge_u (local.get $i) (local.get $count)))
                (local.set $acc
                  (i32x4.add (local.get $acc)
                    (i32x4.mul
                      (i32x4.extend_low_i16x8_u (i16x8.extend_low_i8x16_u (v128.load32_zero (local.get $p))))
                      (i32x4.splat (i32.load (local.get $w))))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (local.set $w (i32.add (local.get $w) (i32.const 4)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $taps_loop)))
            ;; Each lane is below 256 after the shift (non-negative weights summing to about 2^22), so the
            ;; narrowing keeps it exactly; the alpha lane is dropped.
            (i32.store (local.get $out)
              (i32.and
                (i32x4.extract_lane 0
                  (i8x16.narrow_i16x8_u
                    (i16x8.narrow_i32x4_u (i32x4.shr_s (local.get $acc) (i32.const 22)) (local.get $acc))
                    (local.get $acc)))
                (i32.const 0x00ffffff)))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $x_loop)))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $rows_loop))))

  ;; Vertical pass: `out_height` rows of `out_width` packed pixels from the horizontal pass to floats through the
  ;; 768-entry table (R, G, B blocks of 256). Four adjacent pixels per step, one accumulator per channel; the caller
  ;; leaves 16 bytes after `between` so the last step of a row may read past its end (those lanes are not written).
  (func (export "columns")
    (param $between i32) (param $out_width i32) (param $first_row i32) (param $bounds i32) (param $weights i32)
    (param $taps i32) (param $out_height i32) (param $table i32) (param $output i32) (param $scratch i32)
    (local $y i32) (local $x i32) (local $i i32) (local $count i32) (local $p i32) (local $w i32) (local $stride i32)
    (local $row_base i32) (local $r v128) (local $g v128) (local $b v128) (local $v v128) (local $weight v128)
    (local $lanes i32) (local $j i32) (local $out i32) (local $mask v128)
    (local.set $stride (i32.shl (local.get $out_width) (i32.const 2)))
    (local.set $mask (i32x4.splat (i32.const 255)))
    (local.set $out (local.get $output))
    (local.set $y (i32.const 0))
    (block $y_done
      (loop $y_loop
        (br_if $y_done (i32.ge_u (local.get $y) (local.get $out_height)))
        (local.set $row_base
          (i32.add (local.get $between)
            (i32.mul
              (i32.sub (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $y) (i32.const 3)))) (local.get $first_row))
              (local.get $stride))))
        (local.set $count (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $y) (i32.const 3)))))
        (local.set $x (i32.const 0))
        (block $x_done
          (loop $x_loop
            (br_if $x_done (i32.ge_u (local.get $x) (local.get $out_width)))
            (local.set $r (i32x4.splat (i32.const 2097152)))
            (local.set $g (local.get $r))
            (local.set $b (local.get $r))
            (local.set $p (i32.add (local.get $row_base) (i32.shl (local.get $x) (i32.const 2))))
            (local.set $w
              (i32.add (local.get $weights) (i32.shl (i32.mul (local.get $y) (local.get $taps)) (i32.const 2))))
            (local.set $i (i32.const 0))
            (block $taps_done
              (loop $taps_loop
                (br_if $taps_done (i32.ge_u (local.get $i) (local.get $count)))
                (local.set $v (v128.load (local.get $p)))
                (local.set $weight (i32x4.splat (i32.load (local.get $w))))
                (local.set $r (i32x4.add (local.get $r) (i32x4.mul (v128.and (local.get $v) (local.get $mask)) (local.get $weight))))
                (local.set $g
                  (i32x4.add (local.get $g)
                    (i32x4.mul (v128.and (i32x4.shr_u (local.get $v) (i32.const 8)) (local.get $mask)) (local.get $weight))))
                (local.set $b (i32x4.add (local.get $b) (i32x4.mul (i32x4.shr_u (local.get $v) (i32.const 16)) (local.get $weight))))
                (local.set $p (i32.add (local.get $p) (local.get $stride)))
                (local.set $w (i32.add (local.get $w) (i32.const 4)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $taps_loop)))
            (v128.store (local.get $scratch) (i32x4.shr_s (local.get $r) (i32.const 22)))
            (v128.store offset=16 (local.get $scratch) (i32x4.shr_s (local.get $g) (i32.const 22)))
            (v128.store offset=32 (local.get $scratch) (i32x4.shr_s (local.get $b) (i32.const 22)))
            (local.set $lanes (i32.sub (local.get $out_width) (local.get $x)))
            (if (i32.gt_u (local.get $lanes) (i32.const 4)) (then (local.set $lanes (i32.const 4))))
            (local.set $j (i32.const 0))
            (block $lanes_done
              (loop $lanes_loop
                (br_if $lanes_done (i32.ge_u (local.get $j) (local.get $lanes)))
                (f32.store (local.get $out)
                  (f32.load (i32.add (local.get $table)
                    (i32.shl (i32.load (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 2)))) (i32.const 2)))))
                (f32.store offset=4 (local.get $out)
                  (f32.load offset=1024 (i32.add (local.get $table)
                    (i32.shl (i32.load offset=16 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 2)))) (i32.const 2)))))
                (f32.store offset=8 (local.get $out)
                  (f32.load offset=2048 (i32.add (local.get $table)
                    (i32.shl (i32.load offset=32 (i32.add (local.get $scratch) (i32.shl (local.get $j) (i32.const 2)))) (i32.const 2)))))
                (local.set $out (i32.add (local.get $out) (i32.const 12)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $lanes_loop)))
            (local.set $x (i32.add (local.get $x) (i32.const 4)))
            (br $x_loop)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $y_loop))))
)
