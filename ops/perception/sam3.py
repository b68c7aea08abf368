"""SAM 3 as a segmenter (transformers' `Sam3Model`): each phrase of the vocabulary is a concept (text)
prompt, SAM 3 returns the instances of that concept with a mask and a score each, and per pixel the
highest-scoring instance wins, as with Grounded-SAM (docs/method.md, "Perception").

Per batch of images:
  1. the phrases are encoded once, when the segmenter is built (CLIP text encoder, 32 tokens each);
  2. each image is encoded once (the ViT and its feature pyramid: nearly all of the compute) and its
     features serve every prompt: the (image, phrase) pairs are run through the DETR encoder, decoder and
     mask head `prompts_per_pass` at a time, the vision features indexed per pair, not recomputed;
  3. an instance's score is sigmoid(its logit) x sigmoid(the prompt's presence logit) (SAM 3's own
     post-processing); it is kept above `score_threshold`, its class is its phrase's;
  4. per image the best `max_detections` instances are kept, their masks (288 x 288 at the input)
     resized bilinearly to the image and cut at `mask_threshold` (after the sigmoid);
  5. masks are merged by score (`vocabulary.merge_masks`): uncovered pixels are unknown (255), sky maps
     to free (17) through its phrase; each pixel's confidence is the winning instance's score.

Pre-processing follows the checkpoint's processor, done here in torch (its image processor needs
torchvision, which the CPU torch pin does not bring): bilinear resize to `input_size` x `input_size`
(1008, the aspect not kept), pixels / 255, mean = std = 0.5. The tokenizer is the checkpoint's own.
On a GPU the model runs in half precision by default (`precision="auto"`: bf16 where supported).

Licence: SAM 3's weights are under Meta's SAM License, not Apache 2.0 like easyocc; the checkpoint is
gated on the Hugging Face hub (README, "Perception backends").
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ops.hub import from_pretrained
from ops.perception.base import ImageBatch, Segmenter, options_from
from ops.perception.vocabulary import Vocabulary, merge_masks_scored
from ops.runtime import resolve_device, resolve_dtype

DEFAULT_CHECKPOINT = "facebook/sam3"
TEXT_LENGTH = 32  # tokens per prompt, as Sam3Processor pads them


class Sam3Segmenter(Segmenter):
    """SAM 3 with the vocabulary's phrases as concept prompts, behind the Segmenter interface."""

    name = "sam3"
    gives_confidence = True

    def __init__(
        self,
        model,
        tokenizer,
        vocabulary: Vocabulary | None = None,
        *,
        score_threshold: float = 0.4,
        mask_threshold: float = 0.5,
        max_detections: int = 100,
        input_size: int | None = None,
        device="auto",
        precision: str = "auto",
        batch_size: int = 2,
        prompts_per_pass: int = 64,
    ):
        if not 0 <= score_threshold <= 1 or not 0 <= mask_threshold <= 1:
            raise ValueError(f"thresholds must lie in [0, 1]: score {score_threshold}, mask {mask_threshold}")
        if int(batch_size) < 1 or int(prompts_per_pass) < 1 or int(max_detections) < 1:
            raise ValueError(
                f"batch_size, prompts_per_pass and max_detections must be >= 1, got {batch_size}, "
                f"{prompts_per_pass}, {max_detections}"
            )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        self.vocab = vocabulary or Vocabulary.default()
        self.score_threshold, self.mask_threshold = float(score_threshold), float(mask_threshold)
        self.max_detections, self.batch_size = int(max_detections), int(batch_size)
        self.prompts_per_pass = int(prompts_per_pass)
        size = input_size or model.config.vision_config.image_size
        self.input_size = int(size if isinstance(size, int) else size[0])
        self.classes = torch.tensor(self.vocab.classes)
        self.text, self.text_mask = self._encode_phrases(tokenizer)

    @torch.inference_mode()
    def _encode_phrases(self, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, TEXT_LENGTH, D) projected text features of the phrases and their (P, TEXT_LENGTH) mask."""
        enc = tokenizer(
            list(self.vocab.phrases), padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
        )
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        for phrase, m in zip(self.vocab.phrases, mask):
            if int(m.sum()) < 1:
                raise ValueError(f"sam3: the tokenizer gives no tokens for vocabulary phrase {phrase!r}")
        return self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, mask

    def pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        """The images as the model's input: (B, 3, S, S), resized bilinearly, mean = std = 0.5."""
        side = (self.input_size, self.input_size)
        x = torch.cat(
            [
                F.interpolate(
                    torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None].float() / 255.0,
                    size=side,
                    mode="bilinear",
                    align_corners=False,
                )
                for i in images
            ]
        )
        return ((x - 0.5) / 0.5).to(self.device, self.dtype)

    def segment(self, batch: ImageBatch) -> list[np.ndarray]:
        return self.segment_scored(batch)[0]

    def segment_scored(self, batch: ImageBatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Class maps, and per pixel the score of the instance that won it (0 where none did)."""
        images = batch.require_images(self.name)
        out, conf = [], []
        for s in range(0, len(images), self.batch_size):
            group = [images[i] for i in range(s, min(s + self.batch_size, len(images)))]
            for img, (scores, classes, masks) in zip(group, self.instances(group)):
                sem, score = merge_masks_scored(masks, scores.tolist(), classes.tolist(), img.shape[:2])
                out.append(sem)
                conf.append(score)
        return out, conf

    @torch.inference_mode()
    def instances(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
        """Per image: (scores (n,), Occ3D classes (n,), masks (n, H, W) bool), best first."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        vision = self.model.get_vision_features(pixel_values=self.pixels(images))
        n_images, n_phrases = len(images), len(self.vocab.phrases)
        pairs = torch.arange(n_images * n_phrases, device=self.device)
        # Per image, the best `max_detections` instances so far (scores, classes, mask logits), kept on the
        # model's device: each pass's candidates are merged in and cut back at once, so only the survivors'
        # masks ever leave the device (all of a pass's masks would be GBs at the real size), and memory is bounded.
        best: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * n_images
        classes = self.classes.to(self.device)
        for s in range(0, len(pairs), self.prompts_per_pass):
            part = pairs[s : s + self.prompts_per_pass]
            img, phrase = part // n_phrases, part % n_phrases

            def per_pair(t: torch.Tensor) -> torch.Tensor:
                return t.index_select(0, img) if t.shape[0] == n_images else t.expand(len(part), *t.shape[1:])

            feats = Sam3VisionEncoderOutput(
                last_hidden_state=per_pair(vision.last_hidden_state),
                fpn_hidden_states=tuple(per_pair(t) for t in vision.fpn_hidden_states),
                fpn_position_encoding=tuple(per_pair(t) for t in vision.fpn_position_encoding),
            )
            text = self.text.index_select(0, phrase)
            res = self.model(
                vision_embeds=feats,
                text_embeds=BaseModelOutputWithPooling(last_hidden_state=text, pooler_output=text),
                attention_mask=self.text_mask.index_select(0, phrase),
            )
            scores = res.pred_logits.float().sigmoid()  # (n, Q)
            if res.presence_logits is not None:
                scores = scores * res.presence_logits.float().sigmoid()  # (n, 1): is the concept there at all
            q = scores.shape[1]
            all_masks = res.pred_masks.flatten(0, 1)  # (pairs x Q, h, w), not copied
            for i in torch.unique(img).tolist():
                rows = (img == i).nonzero()[:, 0]
                s_i = scores.index_select(0, rows).reshape(-1)  # pair order, then query order
                keep = (s_i > self.score_threshold).nonzero()[:, 0]
                flat = (rows[:, None] * q + torch.arange(q, device=rows.device)).reshape(-1).index_select(0, keep)
                c_i = classes.index_select(0, phrase.index_select(0, rows)).repeat_interleave(q).index_select(0, keep)
                prev = best[i]
                n_prev = 0 if prev is None else len(prev[0])
                cand_s = s_i.index_select(0, keep) if prev is None else torch.cat([prev[0], s_i.index_select(0, keep)])
                cand_c = c_i if prev is None else torch.cat([prev[1], c_i])
                order = torch.argsort(-cand_s, stable=True)[: self.max_detections]  # the earlier candidates first
                old = order < n_prev  # only the survivors' masks are gathered
                masks = all_masks.new_empty((len(order), *all_masks.shape[1:]))
                if prev is not None:
                    masks[old] = prev[2].index_select(0, order[old])
                masks[~old] = all_masks.index_select(0, flat.index_select(0, order[~old] - n_prev))
                best[i] = (cand_s.index_select(0, order), cand_c.index_select(0, order), masks)
        return [self._best(b, image.shape[:2]) for b, image in zip(best, images)]

    def _best(self, best, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """One image's best instances (score order, stable) on the CPU, masks at the image size."""
        if best is None or not len(best[0]):
            return torch.zeros(0), torch.zeros(0, dtype=torch.long), np.zeros((0, *size), bool)
        scores, classes, logits = best
        masks = F.interpolate(logits.float()[None], size=size, mode="bilinear", align_corners=False)[0]
        return scores.cpu(), classes.cpu(), (masks.sigmoid() > self.mask_threshold).cpu().numpy()


@options_from(Sam3Segmenter)
def build_sam3(checkpoint: str = DEFAULT_CHECKPOINT, vocabulary: Mapping | None = None, **options) -> Sam3Segmenter:
    """Load SAM 3 and its tokenizer by hub id or local folder (see `ops.hub.from_pretrained`). The hub
    checkpoint is gated: accept the SAM License on its page, then `hf auth login` and `hf download`."""
    from transformers import AutoTokenizer, Sam3Model

    model = from_pretrained(Sam3Model, checkpoint, "sam3 segmenter (SAM 3)")
    tokenizer = from_pretrained(AutoTokenizer, checkpoint, "sam3 tokenizer")
    vocab = Vocabulary.from_mapping(vocabulary) if vocabulary is not None else Vocabulary.default()
    return Sam3Segmenter(model, tokenizer, vocab, **options)
