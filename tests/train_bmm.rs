//! BMM token dropping: the class token always stays, the number dropped stays within
//! `floor(ratio * tokens)`, every count in range occurs, and the padding mask follows the tokens.

use candle_core::{Device, Tensor};
use ivt::train::{drop_tokens, kept_positions};
use rand::SeedableRng;

#[test]
fn drops_within_bounds_and_never_the_class_token() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for tokens in [1usize, 2, 11, 64, 311] {
        for ratio in [0.0f32, 0.2, 0.3, 1.0] {
            let max_drop = (ratio as f64 * (tokens - 1) as f64).floor() as usize;
            let mut seen = vec![false; max_drop + 1];
            for _ in 0..400 {
                let kept = kept_positions(tokens, ratio, &mut rng);
                assert_eq!(kept[0], 0, "class token dropped");
                assert!(kept.windows(2).all(|w| w[0] < w[1]), "unsorted or repeated");
                assert!(kept.iter().all(|&i| i < tokens));
                let dropped = tokens - kept.len();
                assert!(dropped <= max_drop, "{dropped} > {max_drop}");
                seen[dropped] = true;
            }
            if max_drop <= 20 {
                assert!(seen.iter().all(|&s| s), "some counts never drawn: {seen:?}");
            }
        }
    }
}

#[test]
fn the_batch_shares_positions_and_the_mask_follows() {
    let device = Device::Cpu;
    // Token j of sample b holds value 100 b + j in every channel; the mask marks j < 5 as real.
    let (b, n, d) = (3usize, 12usize, 4usize);
    let values: Vec<f32> = (0..b * n * d)
        .map(|i| ((i / d / n) * 100 + (i / d) % n) as f32)
        .collect();
    let tokens = Tensor::from_vec(values, (b, n, d), &device).unwrap();
    let mask: Vec<u32> = (0..b * n).map(|i| u32::from(i % n < 5)).collect();
    let mask = Tensor::from_vec(mask, (b, n), &device).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..50 {
        let (t, m) = drop_tokens(&tokens, Some(&mask), 0.5, &mut rng).unwrap();
        let m = m.unwrap().to_vec2::<u32>().unwrap();
        let t = t.to_vec3::<f32>().unwrap();
        let positions: Vec<usize> = t[0].iter().map(|tok| tok[0] as usize).collect();
        assert_eq!(positions[0], 0);
        assert!(n - positions.len() <= 5);
        for s in 0..b {
            let here: Vec<usize> = t[s].iter().map(|tok| tok[0] as usize - 100 * s).collect();
            assert_eq!(here, positions, "sample {s} kept other positions");
            let want: Vec<u32> = positions.iter().map(|&p| u32::from(p < 5)).collect();
            assert_eq!(m[s], want);
        }
    }
    let (same, _) = drop_tokens(&tokens, None, 0.0, &mut rng).unwrap();
    assert_eq!(same.dims(), &[b, n, d]);
}
