//! The registry: every architecture answers for its own identity and
//! `model_type`, writes configs it reads back, and names linears its default
//! LoRA targets match. No GPU needed.

use engine::models::config::{Head, ModelShape};
use engine::models::lora::LoraConfig;
use engine::models::registry::{architecture, by_model_type, ARCHITECTURES};
use engine::models::ModelConfig;

fn shape_for(arch: engine::models::Arch) -> ModelShape {
    ModelShape {
        arch,
        vocab_size: 96,
        hidden: 32,
        layers: 2,
        heads: 2,
        intermediate: 64,
        context: 16,
    }
}

#[test]
fn every_architecture_is_found_by_identity_and_model_type() {
    for a in ARCHITECTURES {
        let id = a.identity();
        assert!(
            std::ptr::addr_eq(*a, architecture(id.arch)),
            "{:?}",
            id.arch
        );
        for t in id.model_types {
            let found = by_model_type(t).unwrap();
            assert_eq!(found.identity().arch, id.arch, "{t}");
        }
        assert_ne!(a.class_name(Head::Lm), a.class_name(Head::Reward));
    }
    assert!(by_model_type("t5").is_none());
}

#[test]
fn new_configs_read_back_as_their_architecture() {
    for a in ARCHITECTURES {
        let id = a.identity();
        let shape = shape_for(id.arch);
        let raw = shape.hf_config(0, None);
        assert_eq!(raw["model_type"], id.model_types[0]);
        assert_eq!(raw["architectures"][0], id.causal_lm);
        let cfg = ModelConfig::from_json(raw, "new").unwrap();
        assert_eq!(cfg.arch, id.arch);
        assert_eq!((cfg.hidden, cfg.n_layer, cfg.intermediate), (32, 2, 64));
        let counted: usize = a
            .param_shapes(&cfg)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(counted, shape.param_count(), "{:?}", id.arch);
        // Every LM-head-only parameter is one of the listed parameters.
        let names: Vec<String> = a.param_shapes(&cfg).into_iter().map(|p| p.0).collect();
        for n in a.lm_head_params(&cfg) {
            assert!(names.contains(&n), "{n}");
        }
    }
}

#[test]
fn default_lora_targets_match_block_linears() {
    for a in ARCHITECTURES {
        let linears = a.linears();
        let cfg = LoraConfig::new(4, 8.0, a.default_lora_targets());
        let matched = linears
            .modules
            .iter()
            .filter(|m| cfg.matches(&format!("{}.0.{m}", linears.layers)))
            .count();
        assert!(matched > 0, "{:?}", a.identity().arch);
    }
}
