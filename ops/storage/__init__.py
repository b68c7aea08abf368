"""Storage: the Zarr scene store (one group per scene and stage, atomic commits), fingerprints of what
produced a result, the incremental plan of a stage (todo / done / failed), and Occ3D-layout label files.

The stages of the store, by name (`<store>/scenes/<scene>/<stage>/`):
"""

SEMANTIC_MAPS = "semantic_maps"  # (keyframes, cameras, H, W) uint8 Occ3D class per pixel
METRIC_DEPTH = "metric_depth"  # (keyframes, cameras, H', W') z-depth in its stored form (map_encoding.py)
OCC_LABELS = "occ_labels"  # (keyframes, 200, 200, 16) uint8 semantics and bool mask_camera
