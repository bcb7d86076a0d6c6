//! The KL controllers (`engine::rl::kl_control`) and `PpoConfig`'s defaults,
//! worked out by hand.

use super::fixture::close;
use engine::rl::{self, AdaptiveKlController, FixedKlController, KlController};

/// β = 0.2, target 6, horizon 10 000:
///   KL 9,   n 1000:  e = clip(0.5) = 0.2,  β = 0.2·(1 + 0.2·0.1) = 0.204
///   KL 5.4, n 500:   e = −0.1,             β = 0.204·(1 − 0.1·0.05) = 0.20298
///   KL −10, n 10000: e = clip(−2.67) = −0.2, β = 0.20298·0.8 = 0.162384
#[test]
fn kl_controllers_by_hand() {
    let mut c = AdaptiveKlController::new(0.2, 6.0, 10_000.0);
    for (kl, n, want) in [
        (9.0, 1000, 0.204),
        (5.4, 500, 0.20298),
        (-10.0, 10_000, 0.162384),
    ] {
        c.update(kl, n);
        close(
            &format!("adaptive after KL {kl}"),
            c.value,
            want,
            0.0,
            1e-14,
        );
    }
    let mut f = FixedKlController::new(0.05);
    KlController::update(&mut f, 100.0, 256);
    assert_eq!(f.value(), 0.05);
    let cfg = rl::PpoConfig::default();
    assert_eq!(
        (cfg.init_kl_coef, cfg.target, cfg.horizon),
        (0.2, 6.0, 10_000.0)
    );
    assert_eq!(
        (cfg.gamma, cfg.lam, cfg.cliprange, cfg.vf_coef),
        (1.0, 0.95, 0.2, 0.1)
    );
    let mut boxed = cfg.kl_controller();
    boxed.update(12.0, 10_000);
    close("boxed adaptive", boxed.value(), 0.2 * 1.2, 0.0, 1e-15);
    let mut fixed = rl::PpoConfig {
        adap_kl_ctrl: false,
        ..cfg
    }
    .kl_controller();
    fixed.update(12.0, 10_000);
    assert_eq!(fixed.value(), 0.2);
}
