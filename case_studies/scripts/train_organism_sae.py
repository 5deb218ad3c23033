"""Train the SAE shipped with the organism: base model, ``blocks.2.hook_resid_post``.

Usage: ``python case_studies/scripts/train_organism_sae.py OUT_DIR``
Trains SAELens's standard SAE on the base's activations over a fresh sample of the
pre-training mixture, prints its quality on held-out documents, and saves it with SAELens.
"""

from __future__ import annotations

import json
import sys

import torch

from postlens import ModelPair
from postlens.diffs.features.sae import SAETrainConfig, sae_quality, train_sae
from postlens.organism.corpus import CorpusConfig, build_corpus

torch.set_num_threads(1)
CONFIG = SAETrainConfig(
    layer=2,
    expansion=4,
    training_tokens=600_000,
    batch_tokens=2048,
    context=64,
    l1_coefficient=1.0,
    lr=3e-3,
)


def main() -> None:
    out = sys.argv[1]
    pair = ModelPair.load("organism:base", "organism:base", backend="transformer_lens")
    sae = train_sae(pair.base, build_corpus(CorpusConfig(n_docs=20_000), seed=123), CONFIG)
    quality = sae_quality(sae, pair.base, build_corpus(CorpusConfig(n_docs=400), seed=321))
    sae.save_model(out)
    print(json.dumps({"config": vars(CONFIG), "quality": quality}, indent=2))


if __name__ == "__main__":
    main()
