"""Models with RANDOM weights, built offline from configs: tiny ones for the tests, real-size ones for the
speed benchmarks (random weights take the same time as trained ones). Never used for labels.

Sizes of the real checkpoints (transformers' conversion scripts): grounding-dino-tiny is Swin-T + BERT-base
(`GroundingDinoConfig()`), grounding-dino-base Swin-B (window 12); `SamConfig()` is ViT-B; ViT-L and
ViT-H below.
"""

from __future__ import annotations

import torch

from ops.perception.vocabulary import Vocabulary

# GroundingDINO splits phrases at these BERT-base-uncased ids ([CLS], [SEP], '.', '?'); a made-up
# vocabulary must put those tokens at the same ids.
_BERT_SPECIAL = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029, ",": 1010}


def word_tokenizer(words, size: int = 1100):
    """A BERT-style tokenizer whose vocabulary holds `words` (each a token) and the special tokens at BERT's ids."""
    from transformers import BertTokenizerFast

    vocab = {f"[unused{i}]": i for i in range(size)}
    inv = {v: k for k, v in vocab.items()}
    for tok, i in _BERT_SPECIAL.items():
        del vocab[inv[i]]
        vocab[tok] = i
    free = [i for i in range(1040, size)]
    for w, i in zip(sorted(set(words)), free):
        del vocab[inv[i]]
        vocab[w] = i
    # transformers 5 ignores vocab_file= here; the vocabulary must be passed as a dict.
    return BertTokenizerFast(vocab=dict(sorted(vocab.items(), key=lambda kv: kv[1])), do_lower_case=True)


def _vocab_words(vocab: Vocabulary | None):
    vocab = vocab or Vocabulary.default()
    return [w for p in vocab.phrases for w in p.split()]


def grounding_dino(
    size: str = "tiny",
    vocab: Vocabulary | None = None,
    max_text_len: int = 256,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor) with random weights.

    size: 'test' (a few hundred thousand weights, for unit tests), 'tiny' or 'base' (the real checkpoints'
    architectures). image_size (shortest, longest edge) overrides the processor's 800 x 1333."""
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    vocab_size = 1100 if size == "test" else 30522
    tok = word_tokenizer(_vocab_words(vocab), vocab_size)
    if size == "test":
        cfg = GroundingDinoConfig(
            backbone_config=SwinConfig(
                embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], window_size=4, out_indices=[2, 3, 4]
            ),
            text_config=BertConfig(
                vocab_size=vocab_size,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=max(max_text_len, 64),
            ),
            d_model=32,
            encoder_layers=1,
            decoder_layers=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            num_queries=30,
            encoder_n_points=2,
            decoder_n_points=2,
            max_text_len=max_text_len,
        )
        image_size = image_size or (96, 160)
    elif size in ("tiny", "base"):
        swin = dict(
            tiny=dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, image_size=224),
            base=dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, image_size=384),
        )
        cfg = GroundingDinoConfig(
            backbone_config=SwinConfig(**swin[size], out_indices=[2, 3, 4]),
            text_config=BertConfig(),
            max_text_len=max_text_len,
        )
    else:
        raise ValueError(f"grounding_dino size {size!r}: expected test, tiny or base")
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(cfg).eval()
    ip = GroundingDinoImageProcessor(
        **({"size": {"shortest_edge": image_size[0], "longest_edge": image_size[1]}} if image_size else {})
    )
    return model, GroundingDinoProcessor(image_processor=ip, tokenizer=tok)


def sam(size: str = "test", seed: int = 0, image_size: int | None = None):
    """(SamModel, SamProcessor) with random weights: 'test' (64 px input), 'base', 'large' or 'huge' (1024 px;
    `image_size` gives a smaller input for CPU benchmarks)."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    if size == "test":
        side = image_size or 64
        cfg = SamConfig(
            vision_config=SamVisionConfig(
                hidden_size=32,
                output_channels=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=side,
                patch_size=8,
                window_size=4,
                global_attn_indexes=[1],
                num_pos_feats=16,
                mlp_dim=64,
            ),
            prompt_encoder_config=SamPromptEncoderConfig(
                hidden_size=32, image_size=side, patch_size=8, mask_input_channels=8
            ),
            mask_decoder_config=SamMaskDecoderConfig(
                hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32
            ),
        )
    elif size in ("base", "large", "huge"):
        side = image_size or 1024
        vision = dict(
            base={},
            large=dict(
                hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, global_attn_indexes=[5, 11, 17, 23]
            ),
            huge=dict(
                hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, global_attn_indexes=[7, 15, 23, 31]
            ),
        )[size]
        cfg = SamConfig(
            vision_config=SamVisionConfig(**vision, image_size=side),
            prompt_encoder_config=SamPromptEncoderConfig(image_size=side),
        )
    else:
        raise ValueError(f"sam size {size!r}: expected test, base, large or huge")
    torch.manual_seed(seed)
    model = SamModel(cfg).eval()
    proc = SamProcessor(
        image_processor=SamImageProcessor(size={"longest_edge": side}, pad_size={"height": side, "width": side})
    )
    return model, proc


def depth_model(kind: str, size: str = "test", seed: int = 0):
    """A depth-estimation model with random weights: kind depth_anything_v2 / depth_pro / zoedepth;
    size 'test' (tiny) or the real architectures: depth_anything_v2 'small' / 'large', depth_pro 'real',
    zoedepth 'real' (kitti)."""
    from transformers import (
        AutoModelForDepthEstimation,
        BeitConfig,
        DepthAnythingConfig,
        DepthProConfig,
        Dinov2Config,
        ZoeDepthConfig,
    )

    if kind == "depth_anything_v2":
        dims = {
            "test": (32, 4, 2, [1, 2, 3, 4], 16, [8, 16, 32, 32], 8),
            "small": (384, 12, 6, [3, 6, 9, 12], 64, [48, 96, 192, 384], 32),
            "large": (1024, 24, 16, [5, 12, 18, 24], 256, [256, 512, 1024, 1024], 32),
        }
        if size not in dims:
            raise ValueError(f"depth_anything_v2 size {size!r}: expected one of {sorted(dims)}")
        hidden, layers, heads, out_idx, fusion, neck, head = dims[size]
        cfg = DepthAnythingConfig(
            backbone_config=Dinov2Config(
                image_size=70 if size == "test" else 518,
                patch_size=14,
                hidden_size=hidden,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                mlp_ratio=2 if size == "test" else 4,
                out_indices=out_idx,
                apply_layernorm=True,
                reshape_hidden_states=False,
            ),
            patch_size=14,
            reassemble_hidden_size=hidden,
            fusion_hidden_size=fusion,
            neck_hidden_sizes=neck,
            head_hidden_size=head,
            depth_estimation_type="metric",
            max_depth=80,
        )
    elif kind == "depth_pro":
        # (ViT width, depth, heads, input side, fusion, hook ids, hook dims, scaled-image dims, extra)
        dims = {
            "test": (16, 2, 2, 32, 16, [1, 0], [8, 8], [16, 16, 8], {}),
            "real": (
                1024,
                24,
                16,
                384,
                256,
                [11, 5],
                [256, 256],
                [1024, 1024, 512],
                dict(merge_padding_value=3, use_batch_norm_in_fusion_residual=False, use_bias_in_fusion_residual=True),
            ),
        }
        if size in dims:
            width, depth, heads, side, fusion, hooks, hook_dims, scaled_dims, extra = dims[size]
            vit = dict(
                model_type="dinov2",
                image_size=side,
                patch_size=16,
                hidden_size=width,
                num_hidden_layers=depth,
                num_attention_heads=heads,
                mlp_ratio=2 if size == "test" else 4,
                use_mask_token=False,
            )
            cfg = DepthProConfig(
                patch_size=side,
                fusion_hidden_size=fusion,
                intermediate_hook_ids=hooks,
                intermediate_feature_dims=hook_dims,
                scaled_images_ratios=[0.25, 0.5, 1],
                scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
                scaled_images_feature_dims=scaled_dims,
                use_fov_model=False,
                image_model_config=dict(vit),
                patch_model_config=dict(vit),
                fov_model_config=dict(vit),
                **extra,
            )
        else:
            raise ValueError(f"depth_pro size {size!r}: expected test or real")
    elif kind == "zoedepth":
        if size == "test":
            backbone = BeitConfig(
                image_size=64,
                patch_size=16,
                num_hidden_layers=4,
                hidden_size=32,
                intermediate_size=64,
                num_attention_heads=2,
                use_relative_position_bias=True,
                reshape_hidden_states=False,
                out_features=["stage1", "stage2", "stage3", "stage4"],
            )
            cfg = ZoeDepthConfig(
                backbone_config=backbone,
                neck_hidden_sizes=[8, 16, 32, 32],
                fusion_hidden_size=16,
                num_relative_features=8,
                bottleneck_features=16,
                bin_embedding_dim=8,
                num_attractors=[4, 4, 2, 1],
                bin_centers_type="normed",
                bin_configurations=[{"name": "kitti", "n_bins": 16, "min_depth": 1e-3, "max_depth": 80.0}],
            )
        elif size == "real":
            backbone = BeitConfig(
                image_size=384,
                num_hidden_layers=24,
                hidden_size=1024,
                intermediate_size=4096,
                num_attention_heads=16,
                use_relative_position_bias=True,
                reshape_hidden_states=False,
                out_features=["stage6", "stage12", "stage18", "stage24"],
            )
            cfg = ZoeDepthConfig(
                backbone_config=backbone,
                neck_hidden_sizes=[256, 512, 1024, 1024],
                bin_centers_type="normed",
                bin_configurations=[{"name": "kitti", "n_bins": 64, "min_depth": 1e-3, "max_depth": 80.0}],
            )
        else:
            raise ValueError(f"zoedepth size {size!r}: expected test or real")
    else:
        raise ValueError(f"depth model kind {kind!r}: expected depth_anything_v2, depth_pro or zoedepth")
    torch.manual_seed(seed)
    return AutoModelForDepthEstimation.from_config(cfg).eval()


def sam3(size: str = "test", vocab: Vocabulary | None = None, seed: int = 0, image_size: int | None = None):
    """(Sam3Model, tokenizer) with random weights: 'test' (56 px input, a few hundred thousand weights) or
    'real' (the facebook/sam3 architecture: ViT-L-sized 32-layer backbone, CLIP text encoder of 24 layers;
    1008 px, `image_size` a smaller multiple of 14 x 24 = 336 for CPU benchmarks). The tokenizer is a
    word-level stand-in for SAM 3's CLIP BPE, holding the vocabulary's words."""
    from transformers import CLIPTextConfig, Sam3Config, Sam3Model
    from transformers.models.sam3.configuration_sam3 import (
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    if size == "test":
        side = image_size or 56
        vit = Sam3ViTConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=side,
            patch_size=14,
            window_size=2,
            global_attn_indexes=[1],
            pretrain_image_size=28,
        )
        small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
        text = CLIPTextConfig(
            vocab_size=1100,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            projection_dim=32,
            bos_token_id=101,
            eos_token_id=102,
            pad_token_id=0,
        )
        heads = dict(
            geometry_encoder_config=Sam3GeometryEncoderConfig(num_layers=1, **small),
            detr_encoder_config=Sam3DETREncoderConfig(num_layers=1, **small),
            detr_decoder_config=Sam3DETRDecoderConfig(num_layers=2, num_queries=12, **small),
            mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=32, num_attention_heads=2),
        )
        fpn = 32
    elif size == "real":
        side = image_size or 1008
        vit = Sam3ViTConfig(image_size=side)
        text, heads, fpn = None, {}, 256
    else:
        raise ValueError(f"sam3 size {size!r}: expected test or real")
    if side % (14 * vit.window_size):
        raise ValueError(f"sam3 input {side} px: must be a multiple of 14 x window {vit.window_size}")
    n = side // 14
    vision = Sam3VisionConfig(
        backbone_config=vit, fpn_hidden_size=fpn, backbone_feature_sizes=[[4 * n] * 2, [2 * n] * 2, [n] * 2]
    )
    cfg = Sam3Config(vision_config=vision, **({"text_config": text} if text is not None else {}), **heads)
    torch.manual_seed(seed)
    model = Sam3Model(cfg).eval()
    return model, word_tokenizer(_vocab_words(vocab), cfg.text_config.vocab_size)
