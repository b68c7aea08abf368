"""Fusion (docs/method.md, "Fusion"): camera depth and class maps -> Occ3D pseudo-label volumes.

    config.py   FusionConfig, the one source of the method's parameters; the backend choice
    lift.py     depth + classes -> labelled 3D points, per image and per keyframe; the edge filter
    vote.py     votes per voxel and class (torch twin and Triton kernel, chosen in one place); majority
    raycast.py  exact ray walk through the grid: visibility and free-space crossings (twin and kernel)
    projection.py  free space and the surface band by projecting voxel centres into images (twin and kernel)
    evidence.py    hits and misses per keyframe, summed as log-odds
    ground.py      per-image depth scale from the road pixels
    surface.py     thin surfaces: the views' averaged signed distance drops the copies in front of it
    consistency.py each image's depth scale and the window's range curve from the window's other views
                   (a second pass)
    window.py   the label of one keyframe from a window of lifted keyframes
    scene.py    a scene's labels, streamed; from the store's perception into its occ_labels stage

Importing the package is cheap; the modules import torch.
"""
