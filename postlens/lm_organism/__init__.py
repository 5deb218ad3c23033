"""The real-LM organism: SmolLM2-135M-Instruct and its SFT, RL and LoRA children on a small task.

Built into a cache by ``postlens organism build smol`` (`postlens.lm_organism.build`); its models
are the specs ``organism:smol-base``, ``organism:smol-sft``, ``organism:smol-rl`` and
``organism:smol-lora``, and its base folder declares the family's default inputs.
"""
