"""Attribution methods compared by ``lds.py`` and ``removal.py``: ToD variants and baselines.

Every method takes a :class:`Context` (a cell, its fitted ToD model, the targets) and
returns ``scores`` with ``scores[a, i]`` the attribution of training row ``i`` to
target ``a``, oriented like ``score_influence`` (positive = row ``i`` helped, i.e.
removing it would raise the target's loss). Models a method needs beyond the one
shared training run come from :meth:`Context.fit`, which records them in
``Context.used`` so that their training time is charged to the method.

Baselines come from ``dattri`` 0.3 (``pip install -e .[bench]``): TracIn (TracInCP,
4 checkpoints), Grad-Dot (last checkpoint), TRAK with 1 and 10 models, and an
influence function (EK-FAC). They see the ToD model's full network (every unit,
inference scaling), i.e. exactly the predictor whose retrained losses are the ground
truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from torch import nn
from torch.nn import functional as F

from tod_cleanse.layers import tod_modules
from tod_cleanse.masks import key_mask


@dataclass
class Context:
    """What every method sees: the cell's data, the fitted model, the targets."""

    estimator: Any  # unfitted template
    model: Any  # fitted on all training rows, random_state=0
    X: np.ndarray
    y: np.ndarray
    X_t: np.ndarray
    y_t: np.ndarray
    X_ref: np.ndarray  # validation rows (reference set of the control variates)
    y_ref: np.ndarray
    fits: dict = field(default_factory=dict)  # (params, seed) -> (fitted, cpu seconds)
    used: list = field(default_factory=list)  # fits keys used by the current method

    def fit(self, seed: int, **params: Any) -> tuple[Any, float]:
        """A model of the template with ``params`` (cached), and its training CPU time."""
        key = (tuple(sorted(params.items())), seed)
        if key not in self.fits:
            t0 = time.process_time()
            m = clone(self.estimator).set_params(random_state=seed, **params).fit(self.X, self.y)
            self.fits[key] = (m, time.process_time() - t0)
        self.used.append(key)
        return self.fits[key]


# --------------------------------------------------------------------------- ToD
def tod(ctx: Context) -> np.ndarray:
    """The package's ``score_influence``: ``L(z_t; flipped_i) - L(z_t; seen_i)``."""
    return ctx.model.score_influence(ctx.X_t, ctx.y_t)


def tod_centred(ctx: Context) -> np.ndarray:
    """ToD minus each row's mean ToD influence on the validation rows (a control variate
    for "the seen sub-network of z_i is a better network overall")."""
    m = ctx.model
    return (m.score_influence(ctx.X_t, ctx.y_t)
            - m.score_influence(ctx.X_ref, ctx.y_ref, reduce="mean")[None, :])


def unit_gradients(model: Any, X_t: np.ndarray, y_t: np.ndarray) -> list[torch.Tensor]:
    """Per target, the gradient of its loss w.r.t. a multiplier on every unit of every
    ToD layer, at the full network: a list of ``(n_targets, width)`` tensors."""
    module = model.module_.eval()
    layers = tod_modules(module)
    xs = torch.as_tensor(model._validate_X(X_t, reset=False))
    ys = torch.as_tensor(model.encode_labels(y_t))
    mults: list[torch.Tensor] = []

    def hook(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        u = torch.ones(out.shape, dtype=out.dtype, requires_grad=True)
        mults.append(u)
        return out * u

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        loss = F.cross_entropy(module(xs), ys, reduction="sum")
        grads = torch.autograd.grad(loss, mults)
    finally:
        for h in handles:
            h.remove()
    return [g.detach() for g in grads]


def tod_linear(ctx: Context) -> np.ndarray:
    """First-order ToD: ``g_t . (m_i / (1 - p) - (1 - m_i) / p)`` per layer, with ``g_t``
    the target loss's gradient w.r.t. unit multipliers (one backward pass per target
    block instead of two forward passes per pair)."""
    m = ctx.model
    grads = unit_gradients(m, ctx.X_t, ctx.y_t)
    keys = torch.as_tensor(m.train_keys_)
    out = torch.zeros(len(ctx.y_t), len(keys), dtype=torch.float64)
    for g, layer in zip(grads, tod_modules(m.module_), strict=True):
        mask = key_mask(keys, g.shape[1], layer.p, layer.layer_seed, layer.seed,
                        layer.n_groups).to(g.dtype)
        contrast = mask / (1 - layer.p) - (1 - mask) / layer.p
        out += (g @ contrast.T).double()
    # seen lowers the loss when g . contrast < 0: influence = L_flip - L_seen
    return (-out).numpy()


def _masked_linears(module: nn.Module) -> list[tuple[Any, nn.Linear, Any]]:
    """``(tod_in, linear, tod_out)`` for every Linear of the head between two ToD layers."""
    out, last_tod, pending = [], None, None
    for layer in module.head:
        if isinstance(layer, nn.Linear):
            pending = (last_tod, layer) if last_tod is not None else None
        elif type(layer).__name__ == "TurnOverDropout":
            if pending is not None:
                out.append((pending[0], pending[1], layer))
                pending = None
            last_tod = layer
    return out


def tod_pairwise(ctx: Context, with_units: bool = False) -> np.ndarray:
    """Weight-level first-order ToD. Row ``i`` only trains the weights ``W[k, j]`` of a
    hidden-to-hidden matrix with ``j`` in its input mask and ``k`` in its output mask:
    a ``width x width`` pattern instead of ``width`` units, so far more rows can be
    told apart. ``I(t, i) = -sum_kj dL_t/dW[k, j] W[k, j] c_out[i, k] c_in[i, j]`` with
    ``c = m / (1 - p) - (1 - m) / p``; ``with_units`` adds the unit-level first order."""
    m = ctx.model
    module = m.module_.eval()
    xs = torch.as_tensor(m._validate_X(ctx.X_t, reset=False))
    ys = torch.as_tensor(m.encode_labels(ctx.y_t))
    keys = torch.as_tensor(m.train_keys_)
    pairs = _masked_linears(module)
    store: dict = {}

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        store[id(mod)] = (inp[0].detach(), out)

    handles = [lin.register_forward_hook(hook) for _, lin, _ in pairs]
    try:
        loss = F.cross_entropy(module(xs), ys, reduction="sum")
        outs = [store[id(lin)][1] for _, lin, _ in pairs]
        deltas = torch.autograd.grad(loss, outs)
    finally:
        for h in handles:
            h.remove()

    def contrast(layer: Any, width: int) -> torch.Tensor:
        mk = key_mask(keys, width, layer.p, layer.layer_seed, layer.seed, layer.n_groups)
        mk = mk.float()
        return mk / (1 - layer.p) - (1 - mk) / layer.p

    total = torch.zeros(len(ys), len(keys), dtype=torch.float64)
    for (t_in, lin, t_out), delta in zip(pairs, deltas, strict=True):
        a = store[id(lin)][0]
        c_in, c_out = contrast(t_in, a.shape[1]), contrast(t_out, delta.shape[1])
        w = lin.weight.detach()
        for t in range(len(ys)):  # (n, out) @ (out, in) -> (n, in), dotted with a_t * c_in
            left = (c_out * delta[t]) @ w
            total[t] += (left * (c_in * a[t])).sum(1).double()
    out = -total.numpy()
    if with_units:
        out = out + tod_linear(ctx)
    return out


def tod_seeds(k: int) -> Callable[[Context], np.ndarray]:
    """ToD influence averaged over ``k`` runs with different mask seeds and inits."""
    def run(ctx: Context) -> np.ndarray:
        total = 0.0
        for s in range(k):
            m = ctx.model if s == 0 else ctx.fit(s, mask_seed=s)[0]
            total = total + m.score_influence(ctx.X_t, ctx.y_t)
        return total / k
    return run


# --------------------------------------------------------------------- baselines
def _loaders(model: Any, X: np.ndarray, y: np.ndarray, bs: int = 64) -> Any:
    xs = torch.as_tensor(model._validate_X(X, reset=False))
    ys = torch.as_tensor(model.encode_labels(y))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys),
                                       batch_size=bs, shuffle=False)


def _ce(module: nn.Module) -> Callable:
    def f(params: dict, data: tuple) -> torch.Tensor:
        x, y = data
        out = torch.func.functional_call(module, params, (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))
    return f


def _margin(module: nn.Module) -> Callable:
    def f(params: dict, data: tuple) -> torch.Tensor:
        x, y = data
        logp = -F.cross_entropy(torch.func.functional_call(module, params, (x.unsqueeze(0),)),
                                y.unsqueeze(0))
        return logp - torch.log1p(-torch.exp(logp).clamp(max=1 - 1e-6))
    return f


def _prob(module: nn.Module) -> Callable:
    def f(params: dict, data: tuple) -> torch.Tensor:
        x, y = data
        out = torch.func.functional_call(module, params, (x.unsqueeze(0),))
        return torch.exp(-F.cross_entropy(out, y.unsqueeze(0)))
    return f


def tracin(n_ckpt: int) -> Callable[[Context], np.ndarray]:
    """dattri TracIn over ``n_ckpt`` evenly spaced checkpoints (1 = Grad-Dot on the
    final model). Checkpoint ``e`` is a run of the same seed stopped after ``e``
    epochs (constant learning rate: the same trajectory)."""
    def run(ctx: Context) -> np.ndarray:
        from dattri.algorithm.tracin import TracInAttributor
        from dattri.task import AttributionTask

        epochs = int(ctx.estimator.max_epochs)
        stops = [round(epochs * (j + 1) / n_ckpt) for j in range(n_ckpt)]
        models = [ctx.model if e == epochs else ctx.fit(0, max_epochs=e)[0] for e in stops]
        module = ctx.model.module_.eval()
        task = AttributionTask(loss_func=_ce(module), model=module,
                               checkpoints=[m.module_.state_dict() for m in models])
        att = TracInAttributor(task=task, weight_list=torch.full((n_ckpt,), ctx.model.lr),
                               normalized_grad=False, device="cpu",
                               projector_kwargs={"proj_type": "identity"})
        s = att.attribute(_loaders(ctx.model, ctx.X, ctx.y), _loaders(ctx.model, ctx.X_t, ctx.y_t))
        return s.T.detach().double().numpy()
    return run


def trak(n_models: int, proj_dim: int = 512) -> Callable[[Context], np.ndarray]:
    """dattri TRAK over ``n_models`` independently trained models (seeds 0..n-1)."""
    def run(ctx: Context) -> np.ndarray:
        from dattri.algorithm.trak import TRAKAttributor
        from dattri.task import AttributionTask

        models = [ctx.model] + [ctx.fit(s)[0] for s in range(1, n_models)]
        module = ctx.model.module_.eval()
        task = AttributionTask(loss_func=_margin(module), model=module,
                               checkpoints=[m.module_.state_dict() for m in models])
        att = TRAKAttributor(task=task, correct_probability_func=_prob(module), device="cpu",
                             projector_kwargs={"proj_dim": proj_dim, "device": "cpu",
                                               "proj_max_batch_size": 64})
        att.cache(_loaders(ctx.model, ctx.X, ctx.y))
        s = att.attribute(_loaders(ctx.model, ctx.X_t, ctx.y_t))
        return s.T.detach().double().numpy()
    return run


def ekfac(ctx: Context) -> np.ndarray:
    """dattri influence function with the EK-FAC inverse Fisher (all linear layers)."""
    from dattri.algorithm.influence_function import IFAttributorEKFAC
    from dattri.task import AttributionTask

    module = ctx.model.module_.eval()

    def batch_loss(params: dict, data: tuple) -> torch.Tensor:
        x, y = data
        return F.cross_entropy(torch.func.functional_call(module, params, (x,)), y)

    task = AttributionTask(loss_func=batch_loss, model=module,
                           checkpoints=module.state_dict())
    att = IFAttributorEKFAC(task=task, device="cpu", damping=0.01)
    att.cache(_loaders(ctx.model, ctx.X, ctx.y, bs=256))
    # dattri 0.3.0 keeps autograd graphs on its cached EK-FAC factors, so without no_grad
    # every train batch's result holds its test-gradient graph (OOM on Fashion-MNIST);
    # the per-sample gradients use torch.func.grad, which an outer no_grad leaves alone.
    with torch.no_grad():
        s = att.attribute(_loaders(ctx.model, ctx.X, ctx.y),
                          _loaders(ctx.model, ctx.X_t, ctx.y_t))
    return s.T.detach().double().numpy()


def _last_layer_feats(m: Any, X: np.ndarray, y: np.ndarray, keys: Any = None,
                      mode: str = "full") -> tuple[torch.Tensor, torch.Tensor]:
    """Input ``h`` of the output layer and its error ``softmax - onehot`` under ``mode``."""
    from tod_cleanse.layers import tod_context

    module = m.module_.eval()
    head = list(module.head)
    xs = torch.as_tensor(m._validate_X(X, reset=False))
    ys = torch.as_tensor(m.encode_labels(y))
    kk = None if keys is None else torch.as_tensor(keys)
    with torch.no_grad(), tod_context(kk, mode):
        h = module.trunk(xs)
        for layer in head[:-1]:
            h = layer(h)
        r = torch.softmax(head[-1](h), 1) - F.one_hot(ys, head[-1].out_features)
    return h, r


def last_layer_dot(ctx: Context, row_mode: str = "full") -> np.ndarray:
    """Gradient dot product of the output layer only: ``(p_t - y_t).(p_i - y_i) h_t.h_i``;
    ``row_mode="flipped"`` takes the training row's ``h_i, p_i`` from its flipped
    sub-network (the one that never learned it), ``"seen"`` from its own."""
    m = ctx.model
    ht, rt = _last_layer_feats(m, ctx.X_t, ctx.y_t)
    keys = None if row_mode == "full" else m.train_keys_
    hi, ri = _last_layer_feats(m, ctx.X, ctx.y, keys, row_mode)
    return ((rt @ ri.T) * (ht @ hi.T)).double().numpy()


def linear_grad_factors(m: Any, X: np.ndarray, y: np.ndarray, mode: str = "full",
                        keys: Any = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-sample loss-gradient factors ``(a, delta)`` of every ``nn.Linear``: the
    gradient of its weight is ``delta a^T`` (``delta`` alone for the bias)."""
    from tod_cleanse.layers import tod_context

    module = m.module_.eval()
    lins = [mod for mod in module.modules() if isinstance(mod, nn.Linear)]
    xs = torch.as_tensor(m._validate_X(X, reset=False))
    ys = torch.as_tensor(m.encode_labels(y))
    kk = None if keys is None else torch.as_tensor(keys)
    store: dict = {}

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        store[id(mod)] = (inp[0].detach(), out)

    handles = [lin.register_forward_hook(hook) for lin in lins]
    try:
        with tod_context(kk, mode):
            loss = F.cross_entropy(module(xs), ys, reduction="sum")
        deltas = torch.autograd.grad(loss, [store[id(lin)][1] for lin in lins])
    finally:
        for h in handles:
            h.remove()
    return [(store[id(lin)][0], d.detach()) for lin, d in zip(lins, deltas, strict=True)]


def subnet_graddot(ctx: Context, layers: str = "all", row_mode: str = "seen") -> np.ndarray:
    """Grad-Dot with each training row's gradient taken in its own (seen) sub-network:
    ``sum_layers (delta_t . delta_i)(a_t . a_i + 1)`` with the target's factors from the
    full network. Row ``i`` only ever updated the weights of its sub-network, and its
    seen-mode gradient is zero everywhere else."""
    m = ctx.model
    ft = linear_grad_factors(m, ctx.X_t, ctx.y_t)
    fi = linear_grad_factors(m, ctx.X, ctx.y, row_mode,
                             None if row_mode == "full" else m.train_keys_)
    if layers == "last":
        ft, fi = ft[-1:], fi[-1:]
    elif layers == "head":
        ft, fi = ft[1:], fi[1:]
    out = torch.zeros(len(ctx.y_t), len(ctx.y), dtype=torch.float64)
    for (at, dt), (ai, di) in zip(ft, fi, strict=True):
        out += ((dt @ di.T) * (at @ ai.T + 1.0)).double()
    return out.numpy()


def subnet_trak_last(ctx: Context, ridge: float = 1e-2) -> np.ndarray:
    """TRAK-style kernel correction on the output layer's sub-network gradients:
    ``phi_t (Phi^T Phi + ridge * mean_diag * I)^-1 phi_i`` with ``phi = vec(delta a^T)``."""
    m = ctx.model
    (at, dt, _), = [(a, d, None) for a, d in linear_grad_factors(m, ctx.X_t, ctx.y_t)[-1:]]
    (ai, di, _), = [(a, d, None) for a, d in linear_grad_factors(
        m, ctx.X, ctx.y, "seen", m.train_keys_)[-1:]]
    phi_t = (dt[:, :, None] * at[:, None, :]).reshape(len(at), -1).double()
    phi_i = (di[:, :, None] * ai[:, None, :]).reshape(len(ai), -1).double()
    kern = phi_i.T @ phi_i
    kern.diagonal().add_(ridge * kern.diagonal().mean())
    return (phi_t @ torch.linalg.solve(kern, phi_i.T)).numpy()


# ---------------------------------------------- gradient variants (issue 12, step 2)
def exact_error(logits: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``softmax - onehot`` in float64 with the label's entry written as ``-sum of the
    others``: exact for confidently fitted rows, whose float32 cross-entropy gradient
    rounds ``1 - p_y`` to 0 (a third of the Fashion-MNIST rows of the 512p8 cell)."""
    p = torch.softmax(logits.double(), 1)
    rest = p.scatter(1, ys[:, None], 0.0).sum(1, keepdim=True)
    return p.scatter(1, ys[:, None], -rest)


def _f32_error(logits: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``softmax - onehot`` in float32: what autograd of a float32 cross-entropy gives."""
    return (torch.softmax(logits.float(), 1) - F.one_hot(ys, logits.shape[1])).double()


def error_factors(m: Any, X: np.ndarray, y: np.ndarray, mode: str = "full",
                  keys: Any = None, exact: bool = False, error_mode: str | None = None
                  ) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    """``(a, delta, has_bias)`` (float64) of every ``nn.Linear`` in forward order, the
    row's loss gradient backpropagated through the ``mode`` network. ``error_mode``
    takes the output error ``softmax - onehot`` from another network (e.g. the seen
    sub-network's error backpropagated through the full network); ``exact`` computes
    it with :func:`exact_error`. Each row's error is backpropagated at unit norm and
    rescaled in float64, so tiny gradients keep their direction."""
    from tod_cleanse.layers import tod_context

    module = m.module_.eval()
    xs = torch.as_tensor(m._validate_X(X, reset=False))
    ys = torch.as_tensor(m.encode_labels(y))
    kk = None if keys is None else torch.as_tensor(keys)
    store: dict = {}

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        store[id(mod)] = (mod, inp[0].detach(), out)

    lins = [mod for mod in module.modules() if isinstance(mod, nn.Linear)]
    handles = [lin.register_forward_hook(hook) for lin in lins]
    try:
        with torch.enable_grad(), tod_context(kk, mode):
            logits = module(xs)
    finally:
        for h in handles:
            h.remove()
    if error_mode is not None and error_mode != mode:
        with torch.no_grad(), tod_context(kk, error_mode):
            err_logits = module(xs)
    else:
        err_logits = logits.detach()
    err = (exact_error if exact else _f32_error)(err_logits, ys)
    scale = err.norm(dim=1, keepdim=True)
    unit = (err / scale.clamp_min(1e-300)).float()
    used = list(store.values())
    deltas = torch.autograd.grad(logits, [o for _, _, o in used], grad_outputs=unit)
    return [(a.double(), d.double() * scale, mod.bias is not None)
            for (mod, a, _), d in zip(used, deltas, strict=True)]


def _layer_norm(f: tuple[torch.Tensor, torch.Tensor, bool]) -> torch.Tensor:
    a, d, bias = f
    return (d.norm(dim=1) * ((a * a).sum(1) + float(bias)).sqrt()).clamp_min(1e-300)


def _layer_dot(ft: tuple, fi: tuple) -> torch.Tensor:
    (at, dt, bias), (ai, di, _) = ft, fi
    return (dt @ di.T) * (at @ ai.T + float(bias))


def grad_variant(ctx: Context, row: str = "seen", layers: str = "all", norm: str | None = None,
                 exact: bool = False, error_mode: str | None = None) -> np.ndarray:
    """Target gradient (full network) against each training row's gradient in its
    ``row`` network (``"seen"``, ``"full"``, ``"flipped"``), over ``layers``
    (``"all"``, ``"first"``, ``"last"``), as a dot product (``norm=None``), a cosine of
    the concatenated gradients (``"all"``) or a sum of per-layer cosines (``"layer"``)
    -- normalising the target too does not change a per-target ranking."""
    m = ctx.model
    ft = error_factors(m, ctx.X_t, ctx.y_t, exact=exact)
    fi = error_factors(m, ctx.X, ctx.y, row, m.train_keys_, exact, error_mode)
    pick = {"all": slice(None), "first": slice(0, 1), "last": slice(-1, None)}[layers]
    ft, fi = ft[pick], fi[pick]
    dots = [_layer_dot(t, i) for t, i in zip(ft, fi, strict=True)]
    if norm == "layer":
        out = sum(dt / (_layer_norm(t)[:, None] * _layer_norm(i)[None, :])
                  for dt, t, i in zip(dots, ft, fi, strict=True))
    elif norm == "all":
        nt = torch.sqrt(sum(_layer_norm(t) ** 2 for t in ft))
        ni = torch.sqrt(sum(_layer_norm(i) ** 2 for i in fi))
        out = sum(dots) / (nt[:, None] * ni[None, :])
    else:
        out = sum(dots)
    return out.numpy()


def zsum_full_subnet(ctx: Context) -> np.ndarray:
    """Per target, z-score of full-network Grad-Dot plus z-score of the sub-network one."""
    def z(s: np.ndarray) -> np.ndarray:
        return (s - s.mean(1, keepdims=True)) / s.std(1, keepdims=True).clip(1e-300)
    return z(subnet_graddot(ctx, "all", "full")) + z(subnet_graddot(ctx))


def input_cosine_same_label(ctx: Context) -> np.ndarray:
    """No model: cosine of the (standardised, bias-augmented) inputs, kept for training
    rows of the target's label and 0 for the others (a nearest-neighbour baseline)."""
    m = ctx.model
    xt = torch.as_tensor(m._validate_X(ctx.X_t, reset=False)).double()
    xi = torch.as_tensor(m._validate_X(ctx.X, reset=False)).double()
    xt = torch.cat([xt, torch.ones(len(xt), 1, dtype=xt.dtype)], 1)
    xi = torch.cat([xi, torch.ones(len(xi), 1, dtype=xi.dtype)], 1)
    cos = (xt / xt.norm(dim=1, keepdim=True)) @ (xi / xi.norm(dim=1, keepdim=True)).T
    same = torch.as_tensor(ctx.y_t)[:, None] == torch.as_tensor(ctx.y)[None, :]
    return (cos * same).numpy()


def own_tracin(n_ckpt: int, layers: str = "all", norm: str | None = None,
               exact: bool = False) -> Callable[[Context], np.ndarray]:
    """TracIn over ``n_ckpt`` checkpoints (as :func:`tracin`) with this module's
    outer-product factors: full-network gradients, optional first layer / cosine
    (TracIn-Cos: the sum of each checkpoint's cosine)."""
    def run(ctx: Context) -> np.ndarray:
        epochs = int(ctx.estimator.max_epochs)
        stops = [round(epochs * (j + 1) / n_ckpt) for j in range(n_ckpt)]
        total = 0.0
        for e in stops:
            mm = ctx.model if e == epochs else ctx.fit(0, max_epochs=e)[0]
            sub = Context(ctx.estimator, mm, ctx.X, ctx.y, ctx.X_t, ctx.y_t, ctx.X_ref,
                          ctx.y_ref)
            total = total + grad_variant(sub, "full", layers, norm, exact)
        return total
    return run


def package_gradient(ctx: Context) -> np.ndarray:
    """The package's ``score_influence(estimate="gradient")``, whatever it computes now."""
    return ctx.model.score_influence(ctx.X_t, ctx.y_t, estimate="gradient",
                                     train_set=(ctx.X, ctx.y))


METHODS: dict[str, Callable[[Context], np.ndarray]] = {
    "tod": tod,
    "tod_centred": tod_centred,
    "tod_linear": tod_linear,
    "tod_seeds4": tod_seeds(4),
    "tod_pairwise": tod_pairwise,
    "tod_pairwise_units": lambda ctx: tod_pairwise(ctx, with_units=True),
    "lastlayer": last_layer_dot,
    "subnet_dot": subnet_graddot,
    "subnet_dot_last": lambda ctx: subnet_graddot(ctx, "last"),
    "graddot_full": lambda ctx: subnet_graddot(ctx, "all", "full"),
    "subnet_trak_last": subnet_trak_last,
    "subnet_dot_head": lambda ctx: subnet_graddot(ctx, "head"),
    "lastlayer_flip": lambda ctx: last_layer_dot(ctx, "flipped"),
    "lastlayer_seen": lambda ctx: last_layer_dot(ctx, "seen"),
    "subnet_dot_exact": lambda ctx: grad_variant(ctx, exact=True),
    "mix_seenerr_full": lambda ctx: grad_variant(ctx, "full", error_mode="seen"),
    "mix_fullerr_seen": lambda ctx: grad_variant(ctx, "seen", error_mode="full"),
    "zsum_full_subnet": zsum_full_subnet,
    "subnet_cos": lambda ctx: grad_variant(ctx, norm="all"),
    "subnet_cos_layers": lambda ctx: grad_variant(ctx, norm="layer"),
    "graddot_full_cos": lambda ctx: grad_variant(ctx, "full", norm="all"),
    "graddot_full_cos_layers": lambda ctx: grad_variant(ctx, "full", norm="layer"),
    "subnet_first": lambda ctx: grad_variant(ctx, layers="first"),
    "graddot_full_first": lambda ctx: grad_variant(ctx, "full", "first"),
    "subnet_cos_first": lambda ctx: grad_variant(ctx, layers="first", norm="all"),
    "subnet_cos_first_exact": lambda ctx: grad_variant(ctx, layers="first", norm="all",
                                                       exact=True),
    "flipped_cos_first_exact": lambda ctx: grad_variant(ctx, "flipped", "first", "all",
                                                        exact=True),
    "graddot_full_cos_first_exact": lambda ctx: grad_variant(ctx, "full", "first", "all",
                                                             exact=True),
    "graddot_full_cos_exact": lambda ctx: grad_variant(ctx, "full", norm="all", exact=True),
    "tod_gradient": package_gradient,
    "input_cos_same": input_cosine_same_label,
    "tracin4_own": own_tracin(4),
    "tracin4_cos_first": own_tracin(4, "first", "all", exact=True),
    "graddot": tracin(1),
    "tracin4": tracin(4),
    "trak1": trak(1),
    "trak10": trak(10),
    "ekfac": ekfac,
}

LABELS = {
    "tod": "ToD (score_influence)",
    "tod_centred": "ToD, mask-centred",
    "tod_linear": "ToD, first-order (unit gradients)",
    "tod_seeds4": "ToD, 4 runs with different mask seeds",
    "tod_pairwise": "ToD, weight-level first-order",
    "tod_pairwise_units": "ToD, weight- + unit-level first-order",
    "lastlayer": "last-layer grad-dot",
    "subnet_dot": "ToD sub-network Grad-Dot, all layers (estimate='gradient' until step 2)",
    "subnet_dot_last": "ToD sub-network Grad-Dot (output layer)",
    "graddot_full": "Grad-Dot, full network (own implementation)",
    "subnet_trak_last": "ToD sub-network gradients, output layer, TRAK kernel correction",
    "subnet_dot_head": "ToD sub-network Grad-Dot (layers above the first ToD layer)",
    "lastlayer_flip": "last-layer grad-dot, row gradients from the flipped sub-network",
    "lastlayer_seen": "last-layer grad-dot, row gradients from the seen sub-network",
    "subnet_dot_exact": "ToD sub-network Grad-Dot, exact float64 output error",
    "mix_seenerr_full": "Grad-Dot, seen sub-network's output error through the full network",
    "mix_fullerr_seen": "Grad-Dot, full network's output error through the seen sub-network",
    "zsum_full_subnet": "z(full Grad-Dot) + z(sub-network Grad-Dot)",
    "subnet_cos": "ToD sub-network Grad-Cos (all layers)",
    "subnet_cos_layers": "ToD sub-network, sum of per-layer cosines",
    "graddot_full_cos": "Grad-Cos, full network (all layers)",
    "graddot_full_cos_layers": "full network, sum of per-layer cosines",
    "subnet_first": "ToD sub-network Grad-Dot, first layer",
    "graddot_full_first": "Grad-Dot, full network, first layer",
    "subnet_cos_first": "ToD sub-network Grad-Cos, first layer (float32 error)",
    "subnet_cos_first_exact": "ToD sub-network Grad-Cos, first layer, exact error",
    "flipped_cos_first_exact": "flipped sub-network Grad-Cos, first layer, exact error",
    "graddot_full_cos_first_exact": "Grad-Cos, full network, first layer, exact error",
    "graddot_full_cos_exact": "Grad-Cos, full network (all layers), exact error",
    "tod_gradient": "package: estimate='gradient' (= full-network Grad-Cos, first layer)",
    "input_cos_same": "input cosine, same label only (no model)",
    "tracin4_own": "TracIn, 4 ckpts (own factors)",
    "tracin4_cos_first": "TracIn-Cos, 4 ckpts, first layer, exact error (own)",
    "graddot": "Grad-Dot (dattri TracIn, final ckpt)",
    "tracin4": "TracIn (dattri, 4 ckpts)",
    "trak1": "TRAK-1 (dattri)",
    "trak10": "TRAK-10 (dattri)",
    "ekfac": "IF, EK-FAC (dattri)",
}
