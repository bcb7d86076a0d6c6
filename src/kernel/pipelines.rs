//! The pipeline cache: each kernel (shader, entry point, override constants)
//! compiled once per device, with its bind group layout reflected from the
//! shader by naga.

use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Kernel;
use crate::shader::{self, BindingKind};

pub(crate) struct Compiled {
    pub(super) name: (&'static str, &'static str),
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) layout: wgpu::BindGroupLayout,
    pub(super) bindings: Vec<(u32, BindingKind)>,
}

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<(String, wgpu::ShaderModule)>>>,
    pipelines: Mutex<HashMap<Key, Arc<Compiled>>>,
}

impl PipelineCache {
    pub(super) fn compiled(&self, device: &wgpu::Device, k: &Kernel) -> Result<Arc<Compiled>> {
        let key: Key = (
            k.shader,
            k.entry,
            k.constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        );
        if let Some(c) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(c.clone());
        }
        let module = {
            let mut modules = self.modules.lock().unwrap();
            match modules.get(k.shader) {
                Some(m) => m.clone(),
                None => {
                    let src = shader::joined_source(k.shader)?;
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.shader),
                        source: wgpu::ShaderSource::Wgsl(src.clone().into()),
                    });
                    let m = Arc::new((src, m));
                    modules.insert(k.shader, m.clone());
                    m
                }
            }
        };
        let bindings = shader::entry_bindings(k.shader, &module.0, k.entry)?;
        let entries: Vec<_> = bindings
            .iter()
            .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::StorageRead => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(k.entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(k.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(k.entry),
            layout: Some(&pipeline_layout),
            module: &module.1,
            entry_point: Some(k.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: k.constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let compiled = Arc::new(Compiled {
            name: (k.shader, k.entry),
            pipeline,
            layout,
            bindings,
        });
        self.pipelines.lock().unwrap().insert(key, compiled.clone());
        Ok(compiled)
    }
}
