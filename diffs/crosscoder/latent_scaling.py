"""Latent Scaling (Minder et al., arXiv 2504.02922): is a child-only latent really absent from the base?

With an L1 penalty a crosscoder can zero a latent's base decoder although the base does carry
the concept (Complete Shrinkage), or split one concept into a base latent and a child latent
(Latent Decoupling). Latent Scaling asks how much of the latent's own decoder direction the
other model's activations still hold, along the tokens where the latent fires.

Exactly what is fitted (Minder et al.'s ``compute_scalers``), for latent ``j`` said to exist in
model ``o`` ("own": the child for a child-only latent, the base for a base-only one) and not in
model ``r`` ("other"), with ``u = d_j^o`` (its decoder direction in the own model) and its
activations ``f_ij``, over the held-out tokens ``i``, in the crosscoder's normalised space. For
each model ``m`` and target ``y_i^m`` the least-squares scalar

    β^m = argmin_β Σ_i ‖β f_ij u − y_i^m‖² = Σ_i f_ij ⟨u, y_i^m⟩ / (‖u‖² Σ_i f_ij²)

is fitted for two targets:

* error: ``y^m = x^m − (x̂^m − f_j d_j^m)``, what the rest of the dictionary leaves
  unexplained in model ``m`` (latent ``j``'s own contribution removed; a large ``β_r`` here is
  Complete Shrinkage);
* reconstruction: ``y^m = x̂^m``, the crosscoder's full reconstruction of model ``m`` (every
  latent and the decoder bias, as the paper's code decodes it; a large ``β_r`` here is Latent
  Decoupling: the other latents rebuild the direction in the other model).

The ratios ``ν^ε = β^ε_r / β^ε_o`` and ``ν^r = β^r_r / β^r_o`` (ν = β_base / β_child for a
child-only latent, β_child / β_base for a base-only one) are ≈0 for a latent truly absent from
the other model and ≈1 for a concept both models hold (a shared latent). One pass,
accumulated batch by batch.

Example:
    >>> u = torch.tensor([[1.0, 0.0]])
    >>> fit = LatentScaling(latents=[0], own=[1], other=[0], directions=u, n_models=2)
    >>> f = torch.tensor([[1.0], [2.0]])
    >>> x = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]]])  # only model 1
    >>> d = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])  # the latent's decoders (base 0)
    >>> fit.update(f, x, x, d)  # perfect reconstruction
    >>> fit.nu()["nu_error"].tolist(), fit.nu()["nu_recon"].tolist()  # base holds none of it
    ([0.0], [0.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor


class LatentScaling:
    """Accumulates the β fits of a set of latents over batches (see the module docstring).

    Args:
        latents: the latents tested (indices into the dictionary; one may appear twice,
            e.g. child-only for two children).
        own: per entry, the model whose decoder holds it.
        other: per entry, the model it is said to be absent from.
        directions: per entry, ``d_j^own`` ``[entry, d_model]``.
        n_models: models in the crosscoder.
    """

    def __init__(
        self, latents: Sequence[int], own: Sequence[int], other: Sequence[int],
        directions: Float[Tensor, "entry d_model"], n_models: int,
    ) -> None:  # fmt: skip
        self.latents = torch.as_tensor(list(latents), dtype=torch.long)
        self.own = torch.as_tensor(list(own), dtype=torch.long)
        self.other = torch.as_tensor(list(other), dtype=torch.long)
        self.u = directions.detach().float()
        n = len(self.latents)
        self.num_error = torch.zeros(n, n_models, dtype=torch.float64)
        self.num_recon = torch.zeros(n, n_models, dtype=torch.float64)
        self.sum_f2 = torch.zeros(n, dtype=torch.float64)

    @torch.no_grad()
    def update(
        self, f: Float[Tensor, "batch latent"], x: Float[Tensor, "batch model d_model"],
        x_hat: Float[Tensor, "batch model d_model"], w_dec: Float[Tensor, "latent model d_model"],
    ) -> None:  # fmt: skip
        """Add one batch (normalised activations, their full reconstruction, latent codes)."""
        if not len(self.latents):
            return
        fj = f[:, self.latents].float()  # [batch, entry]
        f2 = fj.pow(2).sum(0)
        # ⟨u, d_j^m⟩: the latent's own contribution along u, removed from every target
        self_dot = torch.einsum("emd,ed->em", w_dec[self.latents].float(), self.u)
        err = torch.einsum("bmd,ed->bem", (x - x_hat).float(), self.u)
        rec = torch.einsum("bmd,ed->bem", x_hat.float(), self.u)
        self.num_error += (torch.einsum("be,bem->em", fj, err) + self_dot * f2[:, None]).double()
        self.num_recon += torch.einsum("be,bem->em", fj, rec).double()
        self.sum_f2 += f2.double()

    def betas(self) -> dict[str, Float[Tensor, "entry model"]]:
        """β^ε and β^r of every entry in every model (NaN for a latent that never fired)."""
        den = (self.u.double().pow(2).sum(-1) * self.sum_f2)[:, None]
        den = torch.where(den > 0, den, torch.nan)
        return {"error": self.num_error / den, "recon": self.num_recon / den}

    def nu(self) -> dict[str, Float[Tensor, " entry"]]:
        """ν^ε (``nu_error``) and ν^r (``nu_recon``) per entry (see the module docstring)."""
        beta, rows = self.betas(), torch.arange(len(self.latents))

        def ratio(other: Tensor, own: Tensor) -> Tensor:
            own = own[rows, self.own]
            return (other[rows, self.other] / torch.where(own.abs() > 1e-9, own, torch.nan)).float()

        return {"nu_error": ratio(beta["error"], beta["error"]),
                "nu_recon": ratio(beta["recon"], beta["recon"])}  # fmt: skip
