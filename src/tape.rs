//! A minimal reverse-mode autograd tape over GPU kernels.
//!
//! Ops record a [`Node`] as they run: the ids of their inputs, the id of their
//! one output, and a boxed backward closure that owns whatever the forward
//! saved (activations, mean/rstd, logsumexp...). [`Tape::backward`] walks the
//! nodes in reverse, hands each closure the gradient of its output and
//! accumulates what it returns into the gradients of its inputs. A closure is
//! consumed when it runs, so saved activations are freed as soon as their
//! backward is done, and nodes that no gradient reaches are dropped unrun.
//!
//! Only differentiable ops produce a [`Var`]. Inference-only kernels (AdamW,
//! axpy, sampling) take and return plain [`Tensor`]s, so they cannot join the
//! graph; the only way back in is an explicit [`Tape::constant`], which is a
//! detach.

use anyhow::{bail, ensure, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::device::Gpu;
use crate::tensor::axpy::{axpy, axpy_into_new};
use crate::tensor::Tensor;

/// A tensor that lives on a tape.
#[derive(Clone, Debug)]
pub struct Var {
    id: usize,
    tensor: Tensor,
    requires_grad: bool,
}

impl Var {
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    pub fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }

    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }

    pub fn id(&self) -> usize {
        self.id
    }
}

/// Given the output gradient and which inputs need gradients, returns one
/// optional gradient per input (same shapes as the inputs).
pub type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    name: &'static str,
    inputs: Vec<(usize, bool)>,
    output: usize,
    backward: BackwardFn,
}

#[derive(Default)]
struct Inner {
    nodes: Vec<Node>,
    next_id: usize,
    no_grad: usize,
}

/// The recorded graph of one forward pass.
pub struct Tape {
    gpu: Arc<Gpu>,
    inner: RefCell<Inner>,
}

/// Gradients of the leaves that required them, by [`Var`].
#[derive(Default)]
pub struct Grads {
    map: HashMap<usize, Tensor>,
}

impl Grads {
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        self.map.get(&v.id)
    }

    /// Removes and returns a gradient, e.g. to hand it to an optimizer.
    pub fn take(&mut self, v: &Var) -> Option<Tensor> {
        self.map.remove(&v.id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// While alive, ops record nothing (see [`Tape::no_grad`]).
pub struct NoGrad<'a>(&'a Tape);

impl Drop for NoGrad<'_> {
    fn drop(&mut self) {
        self.0.inner.borrow_mut().no_grad -= 1;
    }
}

impl Tape {
    pub fn new(gpu: &Arc<Gpu>) -> Tape {
        Tape {
            gpu: gpu.clone(),
            inner: RefCell::default(),
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn new_var(&self, tensor: Tensor, requires_grad: bool) -> Var {
        let mut inner = self.inner.borrow_mut();
        let id = inner.next_id;
        inner.next_id += 1;
        Var {
            id,
            tensor,
            requires_grad,
        }
    }

    /// A trainable leaf: its gradient is returned by [`Tape::backward`].
    pub fn param(&self, t: &Tensor) -> Var {
        self.new_var(t.clone(), true)
    }

    /// A leaf that needs no gradient (inputs, frozen weights, detached values).
    pub fn constant(&self, t: Tensor) -> Var {
        self.new_var(t, false)
    }

    /// Stops recording until the guard is dropped (generation, reference
    /// model scoring).
    pub fn no_grad(&self) -> NoGrad<'_> {
        self.inner.borrow_mut().no_grad += 1;
        NoGrad(self)
    }

    pub fn is_recording(&self) -> bool {
        self.inner.borrow().no_grad == 0
    }

    /// Number of recorded nodes (for tests and memory accounting).
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps an op's output. The backward closure is kept only when recording
    /// and some input requires a gradient; otherwise it is dropped at once,
    /// with whatever it saved.
    pub fn record(
        &self,
        name: &'static str,
        inputs: &[&Var],
        output: Tensor,
        backward: impl FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Var {
        let needs_grad = self.is_recording() && inputs.iter().any(|v| v.requires_grad);
        let var = self.new_var(output, needs_grad);
        if needs_grad {
            let inputs = inputs.iter().map(|v| (v.id, v.requires_grad)).collect();
            self.inner.borrow_mut().nodes.push(Node {
                name,
                inputs,
                output: var.id,
                backward: Box::new(backward),
            });
        }
        var
    }

    /// The same values under another shape: a view that shares storage, whose
    /// backward reshapes the gradient back.
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        let out = x.tensor.reshape(shape)?;
        let in_shape = x.shape().to_vec();
        Ok(self.record("reshape", &[x], out, move |dy, _| {
            Ok(vec![Some(dy.reshape(&in_shape)?)])
        }))
    }

    /// Backpropagates from a scalar (or any-shaped) output seeded with ones.
    pub fn backward(&self, out: &Var) -> Result<Grads> {
        let seed = Tensor::full(&self.gpu, out.shape(), 1.0)?;
        self.backward_with(out, seed)
    }

    /// Backpropagates `seed` = d(objective)/d(out). Consumes the recorded
    /// nodes: the tape is empty afterwards and can record the next step.
    pub fn backward_with(&self, out: &Var, seed: Tensor) -> Result<Grads> {
        ensure!(
            out.requires_grad,
            "backward from a value that does not depend on any parameter"
        );
        ensure!(
            seed.shape() == out.shape(),
            "seed {:?} for output {:?}",
            seed.shape(),
            out.shape()
        );
        let nodes = std::mem::take(&mut self.inner.borrow_mut().nodes);
        let produced: std::collections::HashSet<usize> = nodes.iter().map(|n| n.output).collect();
        // Gradient per var id, and whether we own its buffer. Backward closures
        // may return aliases (a residual add passes `dy` straight through), so a
        // gradient's first accumulation writes a new buffer (axpy_into_new);
        // later ones add in place.
        let mut grads: HashMap<usize, (Tensor, bool)> = HashMap::new();
        grads.insert(out.id, (seed, false));
        for node in nodes.into_iter().rev() {
            let Some((dy, _)) = grads.remove(&node.output) else {
                continue;
            };
            let needs: Vec<bool> = node.inputs.iter().map(|i| i.1).collect();
            let input_grads = (node.backward)(&dy, &needs)?;
            if input_grads.len() != node.inputs.len() {
                bail!(
                    "{}: backward returned {} gradients for {} inputs",
                    node.name,
                    input_grads.len(),
                    node.inputs.len()
                );
            }
            for ((id, needed), g) in node.inputs.into_iter().zip(input_grads) {
                let Some(g) = g.filter(|_| needed) else {
                    continue;
                };
                let entry = match grads.remove(&id) {
                    None => (g, false),
                    Some((acc, owned)) => {
                        ensure!(
                            acc.numel() == g.numel(),
                            "{}: gradient shape {:?} vs {:?}",
                            node.name,
                            g.shape(),
                            acc.shape()
                        );
                        let acc = if owned {
                            axpy(&acc, 1.0, &g)?;
                            acc
                        } else {
                            axpy_into_new(&acc, 1.0, &g)?
                        };
                        (acc, true)
                    }
                };
                grads.insert(id, entry);
            }
        }
        // What is left and was not produced by a node is a leaf gradient.
        let map = grads
            .into_iter()
            .filter(|(id, _)| !produced.contains(id))
            .map(|(id, (g, _))| (id, g))
            .collect();
        Ok(Grads { map })
    }
}
