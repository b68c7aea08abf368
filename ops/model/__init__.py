"""The EasyOcc model (docs/method.md, "The EasyOcc model"): a camera-only 3D occupancy network trained in
3D on the pseudo-labels, with no rendering. Nothing here knows about Dagster.

- config.py: `EasyOccConfig` and `TrainConfig` (paper-like defaults and a tiny preset);
- network.py: ResNet (transformers) -> 64-channel features -> voxel-projection lift -> positional
  embedding -> 3D hourglass CNN -> 18 logits per voxel;
- losses.py: class-balanced cross-entropy + 3D Lovasz-softmax, ignoring unobserved voxels (255);
  `OccupancyLoss` is the module another codebase adds to its own losses;
- data.py: samples (images, projections, labels) by keyframe, labels from the Zarr store or an
  Occ3D-format directory (`PseudoLabels`);
- train.py: the training loop (AdamW, step decay, mixed precision on GPU, resumable checkpoints),
  single process or Ray Train;
- evaluate.py: Occ3D metrics of a model (and of the labels, and of a per-height baseline).
"""
