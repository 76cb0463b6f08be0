"""SCADF-MoE, its four baselines, and the ablation switches.

Read top to bottom, like nanoGPT's model.py: one ``nn.Module`` per concept.

Shapes: B batch, L trajectory points, C CFR channels (3 per stored antenna), K subcarriers, F numeric
features, T CFR tokens per point, d model width. A model maps ``numeric`` (B, L, F) and ``cfr``
(B, L, C, K) to a :class:`ModelOutput` with normalised positions of the L points and of the
trajectory centroid. Task index t = 0..L-1 are the points, t = L the centroid.

Soft MoE (Puigcerver et al., 2023, "From sparse to soft mixtures of experts"): for tokens X (m, d)
and slot parameters Phi (d, n p), logits = X Phi; dispatch D = softmax over tokens (columns sum to
1), combine C = softmax over slots (rows sum to 1); slot inputs D^T X; expert i processes its p
slots; output C Y. With ``normalize_router`` X and Phi are l2-normalised and scaled by a learned
scalar, as in the paper's recipe for large d.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelConfig:
    name: str = "scadf"
    trajectory_length: int = 5
    num_numeric: int = 6
    cfr_channels: int = 3
    num_subcarriers: int = 64
    cfr_tokens_per_point: int = 4
    d_model: int = 64
    n_heads: int = 4
    n_blocks: int = 2
    n_experts: int = 8
    slots_per_expert: int = 1
    expert_hidden: int = 128
    dropout: float = 0.0
    dynamic_routing: bool = True  # False: uniform dispatch/combine (ablation)
    task_embeddings: bool = True
    normalize_router: bool = True
    mmd_weight: float = 0.1  # lambda of the loss
    # Learning-dynamics choices the paper leaves open (``PLAIN_INIT`` turns all three off):
    residual_init: str = "zero"  # "zero": residual-branch output layers start at 0 (block = identity); "default"
    encoder_norm: bool = True  # LayerNorm at each encoder's output: CFR and numeric tokens start at one scale
    task_prenorm: bool = True  # the task MoE's router and experts read LayerNorm(x), like the blocks above it

    def __post_init__(self) -> None:
        if self.residual_init not in RESIDUAL_INITS:
            raise ValueError(f"residual_init must be one of {RESIDUAL_INITS}, got {self.residual_init!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``ModelConfig.residual_init`` choices: "zero" (nanoGPT/Fixup/ReZero/DiT-style identity at init) or
#: "default" (PyTorch's default init of the output layers).
RESIDUAL_INITS = ("zero", "default")

#: Overrides that turn off the three learning-dynamics choices (PyTorch's default init, no encoder or
#: task-MoE norms): the plain models of the learning benchmark's ablation (``bench/bench_learning.py``).
PLAIN_INIT: dict[str, Any] = {"residual_init": "default", "encoder_norm": False, "task_prenorm": False}


def zero_residual_output(*params: torch.Tensor) -> None:
    """Zero the output weights (and biases) of a residual branch, so the branch adds nothing at init.

    Not in the paper (it says nothing about initialisation). Reading: the residual stream should
    start as each point's own tokens; with full-scale branches every block first adds a vector that
    is nearly the same for all 40 tokens of a sample (near-uniform attention and soft-MoE dispatch),
    which drowns the per-point signal that lies ~0.03 position-scale units from the trajectory mean.
    The branch's output weights get gradients at once; its input
    weights follow from the second step.
    """
    with torch.no_grad():
        for p in params:
            p.zero_()


@dataclass
class ModelOutput:
    points: torch.Tensor  # (B, L, 2) normalised positions
    centroid: torch.Tensor  # (B, 2)
    routing: dict[str, torch.Tensor] = field(default_factory=dict)  # dispatch/combine for inspection
    mmd: torch.Tensor | None = None  # mean pairwise MMD^2 between task routers (SCADF only)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # routing sharpness (eval mode, SCADF only)


# ----------------------------------------------------------------------------- encoders

class CFREncoder(nn.Module):
    """CFR of each point (C, K) -> T tokens: depth-wise conv, shallow 1-D CNN, frequency positions."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, d = cfg.cfr_channels, cfg.d_model
        self.depthwise = nn.Conv1d(c, c, kernel_size=7, padding=3, groups=c)
        self.conv1 = nn.Conv1d(c, d, kernel_size=5, padding=2)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool1d(cfg.cfr_tokens_per_point)
        self.norm = nn.LayerNorm(d) if cfg.encoder_norm else nn.Identity()
        self.freq_pos = nn.Parameter(0.02 * torch.randn(cfg.cfr_tokens_per_point, d))

    def forward(self, cfr: torch.Tensor) -> torch.Tensor:
        """Tokens LN(pool(GELU(conv2(GELU(conv1(dwconv(H))))))) + p_freq. The LayerNorm
        (``encoder_norm``; not in the paper) brings the tokens to unit RMS: without it they start at
        RMS 0.04 against 0.3 for the numeric tokens, and the first block's update swamps them."""
        b, l, c, k = cfr.shape
        x = cfr.reshape(b * l, c, k)
        x = F.gelu(self.conv1(self.depthwise(x)))
        x = self.norm(self.pool(F.gelu(self.conv2(x))).transpose(1, 2))  # (B L, T, d)
        return (x + self.freq_pos).reshape(b, -1, x.shape[-1])  # (B, L T, d)


class NumericEncoder(nn.Module):
    """Numeric features of each point (F,) -> T tokens of width d (a light MLP).

    The first layer runs in fp32 even under bf16 autocast: the features carry the per-point signal
    at 1e-2 of their spread (a LOS point's normalised distance varies by 0.007 within a trajectory),
    below bf16's 8-bit mantissa (rounding alone costs ~0.02 m^2 on LOS points)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.t, self.d = cfg.cfr_tokens_per_point, cfg.d_model
        self.first = nn.Linear(cfg.num_numeric, cfg.d_model)
        self.second = nn.Linear(cfg.d_model, self.t * self.d)
        self.norm = nn.LayerNorm(self.d) if cfg.encoder_norm else nn.Identity()

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        b, l, _ = numeric.shape
        with torch.autocast(numeric.device.type, enabled=False):
            h = F.gelu(self.first(numeric.float()))
        return self.norm(self.second(h).reshape(b, l * self.t, self.d))


def num_modalities(cfg: ModelConfig) -> int:
    """2 (CFR and numeric tokens), or 1 for data without a CFR (``cfr_channels == 0``: numeric only)."""
    return 2 if cfg.cfr_channels > 0 else 1


class Tokenizer(nn.Module):
    """Both modalities as one token sequence [CFR tokens | numeric tokens], with modality and
    trajectory-point embeddings. ``point_of_token`` maps each token to its point. For data without a
    CFR (``cfr_channels == 0``) the sequence is the numeric tokens alone (modality 1 throughout)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfr = CFREncoder(cfg) if cfg.cfr_channels > 0 else None
        self.numeric = NumericEncoder(cfg)
        self.modality = nn.Parameter(0.02 * torch.randn(2, cfg.d_model))
        self.point = nn.Parameter(0.02 * torch.randn(cfg.trajectory_length, cfg.d_model))
        per_point = torch.arange(cfg.trajectory_length).repeat_interleave(cfg.cfr_tokens_per_point)
        cfr_points = [per_point] if self.cfr is not None else []
        self.register_buffer("point_of_token", torch.cat([*cfr_points, per_point]), persistent=False)
        self.register_buffer("modality_of_token", torch.cat([*(torch.zeros_like(p) for p in cfr_points),
                                                             torch.ones_like(per_point)]), persistent=False)

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> torch.Tensor:
        tokens = self.numeric(numeric) if self.cfr is None else torch.cat([self.cfr(cfr), self.numeric(numeric)], dim=1)
        return tokens + self.modality[self.modality_of_token] + self.point[self.point_of_token]


# ----------------------------------------------------------------------------- building blocks

class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        if cfg.residual_init == "zero":
            zero_residual_output(self.proj.weight, self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, m, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(b, m, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if torch._C._functorch.is_batchedtensor(q) and not (self.training and self.dropout):
            # under vmap (stacked runs, scadf_lib.engine) SDPA's CPU kernel has no batching rule and
            # would loop over the runs: the same softmax(q k^T / sqrt(d_head)) v written out
            att = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            y = att.softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, m, d))


class MLP(nn.Module):
    def __init__(self, d: int, hidden: int, dropout: float = 0.0, zero_out: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d), nn.Dropout(dropout))
        if zero_out:
            zero_residual_output(self.net[2].weight, self.net[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Experts(nn.Module):
    """n expert MLPs applied to their own slots: input (..., n, p, d) -> (..., n, p, d)."""

    def __init__(self, n: int, d: int, hidden: int, zero_out: bool = False):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n, d, hidden) / math.sqrt(d))
        self.b1 = nn.Parameter(torch.zeros(n, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(n, hidden, d) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(n, 1, d))
        if zero_out:
            zero_residual_output(self.w2, self.b2)

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        h = F.gelu(torch.einsum("...npd,ndh->...nph", slots, self.w1) + self.b1)
        return torch.einsum("...nph,nhd->...npd", h, self.w2) + self.b2


class Router(nn.Module):
    """Slot parameters Phi for R routers: dispatch and combine weights (B, R, m, S) from tokens (B, m, d).

    As in vmoe's ``SoftRouter`` (Puigcerver et al. 2023, "normalisation"): logits =
    s * l2norm(X) l2norm(Phi_r), with a learned scale s; only the router sees normalised tokens (the
    experts get the tokens as they are). s starts at sqrt(d), so that the initial logits have about
    unit variance, as unnormalised routing of LayerNorm-ed tokens would have (with s = 1 the logits
    of random unit vectors have standard deviation 1/sqrt(d) and every softmax is nearly uniform);
    it is learned as log s, so an optimiser step changes it by a factor, not by a fixed amount.
    """

    def __init__(self, cfg: ModelConfig, num_routers: int = 1):
        super().__init__()
        slots = cfg.n_experts * cfg.slots_per_expert
        self.phi = nn.Parameter(torch.randn(num_routers, cfg.d_model, slots) / math.sqrt(cfg.d_model))
        self.normalize = cfg.normalize_router
        self.log_scale = nn.Parameter(torch.full((), 0.5 * math.log(cfg.d_model)))
        self.dynamic = cfg.dynamic_routing

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Dispatch (B, R, m, S), softmax over the tokens router r may read (``token_mask`` (R, m) bool,
        None for all; zero elsewhere), and combine (B, R, m, S), softmax over slots S.
        With ``dynamic_routing`` off (ablation) the logits are zero: uniform dispatch and combine."""
        b, m, _ = x.shape
        r, _, s = self.phi.shape
        if not self.dynamic:
            logits = x.new_zeros(b, r, m, s)
        elif self.normalize:
            logits = self.log_scale.exp() * torch.einsum("bmd,rds->brms", F.normalize(x, dim=-1),
                                                         F.normalize(self.phi, dim=1))
        else:
            logits = torch.einsum("bmd,rds->brms", x, self.phi)
        dispatch_logits = logits if token_mask is None else logits.masked_fill(~token_mask[:, :, None], float("-inf"))
        return dispatch_logits.softmax(dim=2), logits.softmax(dim=3)


def routing_sharpness(dispatch: torch.Tensor, combine: torch.Tensor,
                      token_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """How decisive a router is (vmoe-style routing metrics), from (..., m, S) weights.

    ``dispatch_entropy``: entropy of each slot's dispatch column over the tokens it may read,
    divided by log(number of those tokens): 1 = uniform, 0 = one token. ``combine_entropy``: entropy
    of each token's combine row over the S slots divided by log S. ``dispatch_max`` / ``combine_max``:
    mean of the largest weight per column / row (uniform: 1 / tokens, 1 / S). Means over everything
    else; ``token_mask`` (R, m) marks the tokens each router reads (the rows that count for combine).
    """
    m, s = dispatch.shape[-2], dispatch.shape[-1]
    if token_mask is None:
        token_mask = torch.ones(dispatch.shape[-3] if dispatch.dim() > 3 else 1, m, dtype=torch.bool,
                                device=dispatch.device)
    mask = token_mask.to(dispatch.dtype)  # (R, m)
    n_tokens = mask.sum(-1)  # (R,)
    h_dispatch = -torch.special.xlogy(dispatch, dispatch).sum(-2)  # (..., R, S)
    h_combine = -torch.special.xlogy(combine, combine).sum(-1)  # (..., R, m)
    rows = mask.expand_as(h_combine)
    return {
        "dispatch_entropy": (h_dispatch / n_tokens.clamp_min(2).log()[:, None]).mean(),
        "combine_entropy": (h_combine * rows).sum() / rows.sum() / math.log(max(s, 2)),
        "dispatch_max": dispatch.amax(-2).mean(),
        "combine_max": (combine.amax(-1) * rows).sum() / rows.sum(),
    }


class SoftMoE(nn.Module):
    """Soft mixture of experts with one router (Puigcerver et al. 2023)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.router = Router(cfg, 1)
        self.experts = Experts(cfg.n_experts, cfg.d_model, cfg.expert_hidden, cfg.residual_init == "zero")
        self.n, self.p = cfg.n_experts, cfg.slots_per_expert

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dispatch, combine = self.router(x)  # (B, 1, m, S)
        dispatch, combine = dispatch[:, 0], combine[:, 0]
        slots = torch.einsum("bms,bmd->bsd", dispatch, x)
        y = self.experts(slots.unflatten(1, (self.n, self.p))).flatten(1, 2)
        return torch.einsum("bms,bsd->bmd", combine, y), {"dispatch": dispatch, "combine": combine}


class SoftMoEBlock(nn.Module):
    """Pre-norm self-attention, then a soft MoE in place of the MLP; residuals around both."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.moe = SoftMoE(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = x + self.attn(self.ln1(x))
        y, routing = self.moe(self.ln2(x))
        return x + y, routing


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP (TransFusion baseline)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.mlp = MLP(cfg.d_model, cfg.expert_hidden, cfg.dropout, cfg.residual_init == "zero")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ModalityTaskMoE(nn.Module):
    """The modality-task MoE (paper III-C): per task t its own router Phi_t over its own slice of the
    token matrix, shared experts, a task embedding, per-task combine and read-out.

    Tasks t = 0..L-1 are the trajectory points, t = L the centroid. Task t's slice M_t holds point
    t's tokens of both modalities (T CFR + T numeric tokens); the centroid's slice is all m tokens.
    After self-attention (tokens X, (m, d); pre-norm, as in the blocks above), as implemented::

        H = LayerNorm(X)                                             (m, d)  (X itself if not task_prenorm)
        logits_t = s * l2norm(H[M_t]) l2norm(Phi_t)                  (|M_t|, S)     S = n p slots
        D_t = softmax over tokens (columns),  C_t = softmax over slots (rows)
        Xs_t = D_t^T H[M_t] + e_t                                    (S, d)  slot inputs + task embedding
        Ys_t = Experts(Xs_t)      (expert i on its p slots; experts shared by all tasks)
        Z_t  = LayerNorm(X[M_t] + C_t Ys_t)                          (|M_t|, d)  residual
        h_t  = mean over the rows of Z_t                             (d,)    the task's vector

    and the linear head maps h_t to (x, y). Readings taken where the paper's text is ambiguous:
    "its own slice" is the tokens of point t in both modalities, so the router still chooses between
    CFR and numeric cues per point; the centroid task reads every token; the task embedding is added
    to the slot inputs (not to the tokens), so it tells the shared experts which task a slot serves;
    the read-out is the mean over the slice (the paper does not name one); the router and experts
    read the LayerNorm-ed stream (``task_prenorm``; vmoe's MoE blocks are pre-norm; off: the raw
    stream). The routing is implemented densely: every task routes over all
    m tokens with the tokens outside M_t masked out of the dispatch softmax (one batched einsum); the
    residual, LayerNorm and read-out then gather only the R = sum_t |M_t| rows inside the slices (the
    others have zero read-out weight): the same function, a third of the rows for L = 5.

    Einstein letters: b batch, t task, m tokens, s slots, d width.
    """

    def __init__(self, cfg: ModelConfig, point_of_token: torch.Tensor):
        super().__init__()
        self.num_tasks = cfg.trajectory_length + 1
        self.ln = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_moe = nn.LayerNorm(cfg.d_model) if cfg.task_prenorm else nn.Identity()
        self.router = Router(cfg, self.num_tasks)
        self.experts = Experts(cfg.n_experts, cfg.d_model, cfg.expert_hidden, cfg.residual_init == "zero")
        self.task_embedding = nn.Parameter(0.02 * torch.randn(self.num_tasks, 1, cfg.d_model),
                                           requires_grad=cfg.task_embeddings)
        if not cfg.task_embeddings:
            nn.init.zeros_(self.task_embedding)
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.n, self.p = cfg.n_experts, cfg.slots_per_expert
        tasks = torch.arange(cfg.trajectory_length)
        own_slice = point_of_token[None, :] == tasks[:, None]  # (L, m)
        task_tokens = torch.cat([own_slice, torch.ones_like(own_slice[:1])])
        self.register_buffer("task_tokens", task_tokens, persistent=False)
        task_of_row, token_of_row = task_tokens.nonzero(as_tuple=True)  # the rows that carry weight
        self.register_buffer("task_of_row", task_of_row, persistent=False)
        self.register_buffer("token_of_row", token_of_row, persistent=False)
        # the point tasks' slices all hold 2T tokens: (L, 2T) token indices, ascending, so that the rows
        # [point tasks' slice tokens..., centroid's m tokens] are (task_of_row, token_of_row) in order
        sizes = own_slice.sum(-1)
        self.uniform = bool((sizes == sizes[0]).all()) and bool((task_tokens[-1]).all())
        if self.uniform:
            self.register_buffer("point_tokens", own_slice.nonzero(as_tuple=True)[1].view(len(sizes), -1),
                                 persistent=False)
        # read-out weight of each slice row: 1 / |M_t| for its task (the mean over the slice)
        readout = torch.nn.functional.one_hot(task_of_row, self.num_tasks).float() / task_tokens.sum(-1)[task_of_row, None]
        self.register_buffer("readout_of_row", readout, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = x + self.attn(self.ln(x))
        h = self.ln_moe(x)
        dispatch, combine = self.router(h, self.task_tokens)  # (B, T, m, S); dispatch zero off the slice
        if self.uniform:  # the same sums over each task's own slice only (a third of the rows for L = 5)
            tk, last = self.point_tokens, self.num_tasks - 1
            rows = torch.arange(last, device=x.device)[:, None]
            slots = torch.cat([torch.einsum("btks,btkd->btsd", dispatch[:, rows, tk], h[:, tk]),
                               torch.einsum("bms,bmd->bsd", dispatch[:, last], h)[:, None]], 1) + self.task_embedding
        else:
            slots = torch.einsum("btms,bmd->btsd", dispatch, h) + self.task_embedding
        y = self.experts(slots.unflatten(2, (self.n, self.p))).flatten(2, 3)  # (B, T, S, d)
        if self.uniform:
            mixed = torch.cat([torch.einsum("btks,btsd->btkd", combine[:, rows, tk], y[:, :last]).flatten(1, 2),
                               torch.einsum("bms,bsd->bmd", combine[:, last], y[:, last])], 1)  # (B, R, d)
        else:
            mixed = torch.einsum("btms,btsd->btmd", combine, y)[:, self.task_of_row, self.token_of_row]
        z = self.ln_out(x[:, self.token_of_row] + mixed)  # Z_t's rows, only those inside the slices
        return torch.einsum("brd,rt->btd", z, self.readout_of_row.to(z.dtype)), {"dispatch": dispatch, "combine": combine}

    def mmd(self, combine: torch.Tensor) -> torch.Tensor:
        """:func:`router_mmd` of this layer's combine weights over its task slices."""
        return router_mmd(combine, self.task_tokens, (self.task_of_row, self.token_of_row))


#: Bandwidths (sigma^2, times 1 / S) of the fixed multi-scale Gaussian kernel of :func:`router_mmd`.
MMD_BANDWIDTHS = (0.5, 2.0, 8.0)  # router_mmd evaluates exactly these three with one exp


def router_mmd(combine: torch.Tensor, token_mask: torch.Tensor,
               rows: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Mean over task pairs of MMD^2 between the task routers' combine distributions.

    Samples of task t: the combine rows C_t[i] of the tokens i in its slice M_t (``token_mask``
    (T, m)), each a distribution over the S slots that all tasks share; ``combine`` is (B, T, m, S).
    With mean embeddings mu_t = mean_i k(C_t[i], .), MMD^2(t, u) = <mu_t, mu_t> + <mu_u, mu_u>
    - 2 <mu_t, mu_u> (biased estimator), averaged over the batch and the T (T - 1) / 2 pairs: zero
    when all tasks route alike, positive when they use different slots. Dispatch columns are left
    out: each task's lie on its own token slice, so they share no space with the other tasks'.
    Kernel: k(a, b) = mean over sigma^2 in MMD_BANDWIDTHS / S of exp(-|a - b|^2 / sigma^2). The
    bandwidths are fixed (|a - b|^2 lies in [0, 2]; 1 / S is the squared norm of a uniform row), so
    the loss does not chase the data, as a bandwidth from the batch's own distances would.

    Only the rows inside a slice are gathered (``rows`` = (task, token) indices of ``token_mask``'s
    True entries, computed here when None): the kernel is R x R with R = sum_t |M_t| (80 for L = 5,
    T = 4 tokens per modality) instead of (T m)^2 = 240^2, the same value (the other rows have
    weight 0).
    """
    b, t, m, s = combine.shape
    task_of_row, token_of_row = token_mask.nonzero(as_tuple=True) if rows is None else rows
    flat = combine.float()[:, task_of_row, token_of_row]  # (B, R, S)
    sq = flat.pow(2).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * flat @ flat.transpose(1, 2)).clamp_min(0)
    # one exp for the three bandwidths (0.5, 2, 8) / S: with u = exp(-d2 S / 8), the others are u^4 and u^16
    u = torch.exp(d2 * (-s / 8.0))
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    k = (u + u4 + u8 * u8) / 3.0  # (B, R, R)
    weight = (1.0 / token_mask.sum(-1).to(flat.dtype))[task_of_row]  # (R,) sample weight 1 / |M_t|
    a = F.one_hot(task_of_row, t).to(flat.dtype) * weight[:, None]  # (R, T)
    gram = a.t() @ (k @ a)  # (B, T, T) <mu_t, mu_u> = A^T K A
    diag = torch.diagonal(gram, dim1=1, dim2=2)
    mmd2 = diag[:, :, None] + diag[:, None, :] - 2 * gram
    pairs = torch.triu_indices(t, t, offset=1, device=combine.device)
    return mmd2[:, pairs[0], pairs[1]].mean()


# ----------------------------------------------------------------------------- pooling and head

def pool_per_task(x: torch.Tensor, point_of_token: torch.Tensor, num_points: int) -> torch.Tensor:
    """Mean of each point's tokens, plus the mean of all tokens as the centroid task: (B, L + 1, d)."""
    onehot = F.one_hot(point_of_token, num_points).to(x.dtype)  # (m, L)
    per_point = torch.einsum("bmd,ml->bld", x, onehot) / onehot.sum(0)[None, :, None]
    return torch.cat([per_point, x.mean(dim=1, keepdim=True)], dim=1)


class PositionHead(nn.Module):
    """One linear map from a task vector to (x, y), shared by all tasks; in fp32 even under bf16
    autocast (bf16 rounds a normalised position to ~1e-2, i.e. 0.2 m: the size of the answer)."""

    def __init__(self, d_in: int):
        super().__init__()
        self.linear = nn.Linear(d_in, 2)

    def forward(self, task_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(task_vectors.device.type, enabled=False):
            xy = self.linear(task_vectors.float())
        return xy[:, :-1], xy[:, -1]


# ----------------------------------------------------------------------------- models

class SCADFMoE(nn.Module):
    """Tokenizer -> soft-MoE blocks -> modality-task MoE -> linear head; MMD between task routers.

    In eval mode the output's ``metrics`` hold each router's sharpness (:func:`routing_sharpness`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        self.blocks = nn.ModuleList(SoftMoEBlock(cfg) for _ in range(cfg.n_blocks))
        self.task_moe = ModalityTaskMoE(cfg, self.tokenizer.point_of_token)
        self.head = PositionHead(cfg.d_model)

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> ModelOutput:
        x = self.tokenizer(numeric, cfr)
        routing: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x, r = block(x)
            routing.update({f"block{i}_{k}": v for k, v in r.items()})
        tasks, r = self.task_moe(x)
        routing.update({f"task_{k}": v for k, v in r.items()})
        points, centroid = self.head(tasks)
        mask = self.task_moe.task_tokens
        mmd = self.task_moe.mmd(r["combine"]) if self.cfg.dynamic_routing else x.new_zeros(())
        metrics: dict[str, torch.Tensor] = {}
        if not self.training:
            for i in range(len(self.blocks)):
                metrics.update({f"block{i}_{k}": v for k, v in routing_sharpness(
                    routing[f"block{i}_dispatch"], routing[f"block{i}_combine"]).items()})
            metrics.update({f"task_{k}": v for k, v in routing_sharpness(r["dispatch"], r["combine"], mask).items()})
        return ModelOutput(points, centroid, routing, mmd, metrics)


class ConcatFusion(nn.Module):
    """Baseline Concat: mean-pool each modality per point, concatenate, linear head (no learned fusion)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        self.modalities = num_modalities(cfg)
        self.head = PositionHead(self.modalities * cfg.d_model)

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> ModelOutput:
        x = self.tokenizer(numeric, cfr)
        L = self.cfg.trajectory_length
        parts = x.chunk(self.modalities, dim=1)  # [CFR tokens | numeric tokens], or the numeric alone
        pot = self.tokenizer.point_of_token[:parts[0].shape[1]]
        feats = torch.cat([pool_per_task(part, pot, L) for part in parts], dim=-1)
        return ModelOutput(*self.head(feats))


class FullConFusion(nn.Module):
    """Baseline FullCon: all tokens flattened through one fully connected fusion layer.

    With ``residual_init="zero"`` the fusion layer starts as the per-task mean of the task's tokens
    (point t: its own 2T tokens; the centroid: all m), the analogue of the zero-initialised residual
    branches for a fusion that has no residual: the model starts as a per-point read-out and learns
    the cross-point mixing from there (not in the paper; default init: every task vector a random
    projection of all 40 tokens, so no point's own features stand out)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        m = num_modalities(cfg) * cfg.trajectory_length * cfg.cfr_tokens_per_point
        self.num_tasks = cfg.trajectory_length + 1
        self.fuse = nn.Linear(m * cfg.d_model, self.num_tasks * cfg.d_model)
        self.head = PositionHead(cfg.d_model)
        if cfg.residual_init == "zero":
            self._init_as_task_means(self.tokenizer.point_of_token, cfg.d_model)

    def _init_as_task_means(self, point_of_token: torch.Tensor, d: int) -> None:
        """fuse(x) = [mean of point t's tokens]_t, [mean of all tokens]: W = (readout (T, m)) kron I_d."""
        L = self.cfg.trajectory_length
        own = (point_of_token[None, :] == torch.arange(L)[:, None]).float()
        readout = torch.cat([own, torch.ones(1, len(point_of_token))])
        readout = readout / readout.sum(-1, keepdim=True)  # (T, m), rows sum to 1
        with torch.no_grad():
            self.fuse.weight.copy_(torch.kron(readout, torch.eye(d)))
            self.fuse.bias.zero_()

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> ModelOutput:
        x = self.tokenizer(numeric, cfr)
        tasks = F.gelu(self.fuse(x.flatten(1))).view(x.shape[0], self.num_tasks, -1)
        return ModelOutput(*self.head(tasks))


class TransFusion(nn.Module):
    """Baseline TransFusion: Transformer encoder over all tokens, pooled per point and overall."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_blocks + 1))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = PositionHead(cfg.d_model)

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> ModelOutput:
        x = self.tokenizer(numeric, cfr)
        for block in self.blocks:
            x = block(x)
        tasks = pool_per_task(self.ln(x), self.tokenizer.point_of_token, self.cfg.trajectory_length)
        return ModelOutput(*self.head(tasks))


class SoftMoEFusion(nn.Module):
    """Baseline SoftMoE: soft-MoE blocks plus one shared-router soft-MoE fusion layer; no task
    routers, no MMD; pooled per point and overall."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg)
        self.blocks = nn.ModuleList(SoftMoEBlock(cfg) for _ in range(cfg.n_blocks + 1))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = PositionHead(cfg.d_model)

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> ModelOutput:
        x = self.tokenizer(numeric, cfr)
        routing: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x, r = block(x)
            routing.update({f"block{i}_{k}": v for k, v in r.items()})
        tasks = pool_per_task(self.ln(x), self.tokenizer.point_of_token, self.cfg.trajectory_length)
        return ModelOutput(*self.head(tasks), routing=routing)


# ----------------------------------------------------------------------------- registry

ModelFactory = Callable[[ModelConfig], nn.Module]

#: name -> (model class, config overrides). Ablations are SCADF-MoE with one switch changed.
REGISTRY: dict[str, tuple[ModelFactory, dict[str, Any]]] = {
    "scadf": (SCADFMoE, {}),
    "concat": (ConcatFusion, {"mmd_weight": 0.0}),
    "fullcon": (FullConFusion, {"mmd_weight": 0.0}),
    "transfusion": (TransFusion, {"mmd_weight": 0.0}),
    "softmoe": (SoftMoEFusion, {"mmd_weight": 0.0}),
    "scadf_no_routing": (SCADFMoE, {"dynamic_routing": False, "mmd_weight": 0.0}),
    "scadf_single_expert": (SCADFMoE, {"n_experts": 1}),
    "scadf_no_mmd": (SCADFMoE, {"mmd_weight": 0.0}),
    "scadf_no_task_emb": (SCADFMoE, {"task_embeddings": False}),
}
BASELINES = ("concat", "fullcon", "transfusion", "softmoe")


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The config of a registered model, with the registry's switches and then ``overrides`` applied."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
    return replace(ModelConfig(name=name), **{**REGISTRY[name][1], **overrides})


def build_model(cfg: ModelConfig) -> nn.Module:
    """Instantiate the model a config names."""
    if cfg.name not in REGISTRY:
        raise ValueError(f"unknown model {cfg.name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[cfg.name][0](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
