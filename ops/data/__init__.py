"""The data the pipeline reads: nuScenes tables opened with nuscenes-devkit, keyframe records (every
camera image with its calibration and own ego pose), camera images, and per-image truth files."""
