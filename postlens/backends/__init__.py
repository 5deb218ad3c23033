"""Model backends: TransformerLens TransformerBridge and nnsight, behind one interface."""
