"""The demo world: a generated driving dataset in the nuScenes format with exact Occ3D truth (see generate.py)."""
