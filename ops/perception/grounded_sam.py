"""Grounded-SAM with transformers (docs/method.md, "Perception"): GroundingDINO finds boxes for the vocabulary's
phrases, SAM turns each box into a mask, and per pixel the mask of the highest-scoring detection wins.

Per batch of images:
  1. the vocabulary is packed into as few text queries as GroundingDINO's text length (256 tokens)
     allows: the default 41 phrases make one query, so each image is encoded once, not 41 times;
  2. for every query (box) of the detector and every phrase, the phrase's probability is the highest
     sigmoid over its tokens; the box's score is its best phrase's probability and its class that
     phrase's class. A box is kept when its score exceeds `box_threshold` and the mean probability of
     its phrase's tokens exceeds `text_threshold` (a multi-word phrase must be matched as a whole);
  3. per class, overlapping boxes are suppressed (IoU above `nms_iou`), at most `max_detections` stay;
  4. SAM encodes each image once and decodes one mask per box;
  5. masks are merged by score (`vocabulary.merge_masks`); uncovered pixels are unknown (255), sky
     maps to free (17) through its phrase; each pixel's confidence is the winning detection's score.
On a GPU the models run in half precision by default (`precision="auto"`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ops.hub import from_pretrained
from ops.perception.base import ImageBatch, Segmenter, options_from
from ops.perception.vocabulary import Vocabulary, merge_masks_scored
from ops.runtime import resolve_device, resolve_dtype

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-base"
DEFAULT_SAM = "facebook/sam-vit-huge"


def phrase_spans(tokenizer, vocab: Vocabulary, chunk: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The query text of a chunk of phrases and each phrase's [start, end) token positions in it."""
    text = vocab.query_text(chunk)
    enc = tokenizer(text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    spans, pos = [], 0
    for i in chunk:
        start = text.index(vocab.phrases[i], pos)
        end = pos = start + len(vocab.phrases[i])
        toks = [t for t, (s, e) in enumerate(offsets) if e > s and s >= start and e <= end]
        if not toks:
            raise ValueError(f"the detector's tokenizer gives no tokens for vocabulary phrase {vocab.phrases[i]!r}")
        spans.append((toks[0], toks[-1] + 1))
    return text, spans


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices kept by greedy non-maximum suppression, highest score first (ties: lower index first)."""
    order = torch.argsort(-scores, stable=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    overlap = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1 :] &= overlap[i, i + 1 :] <= iou
    return order[keep]


class GroundedSAM(Segmenter):
    """GroundingDINO + SAM behind the Segmenter interface."""

    name = "grounded_sam"
    gives_confidence = True

    def __init__(
        self,
        detector,
        detector_processor,
        sam,
        sam_processor,
        vocabulary: Vocabulary | None = None,
        *,
        box_threshold: float = 0.3,
        text_threshold: float = 0.25,
        nms_iou: float | None = 0.7,
        max_detections: int = 100,
        device="auto",
        precision: str = "auto",
        batch_size: int = 4,
        masks_per_call: int = 64,
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.detector = detector.to(self.device, self.dtype).eval()
        self.sam = sam.to(self.device, self.dtype).eval()
        self.det_proc, self.sam_proc = detector_processor, sam_processor
        self.vocab = vocabulary or Vocabulary.default()
        if not 0 <= text_threshold <= 1 or not 0 <= box_threshold <= 1:
            raise ValueError(f"thresholds must lie in [0, 1]: box {box_threshold}, text {text_threshold}")
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.nms_iou, self.max_detections = nms_iou, int(max_detections)
        self.batch_size, self.masks_per_call = int(batch_size), int(masks_per_call)
        tok = detector_processor.tokenizer
        max_len = int(getattr(detector.config, "max_text_len", 256))
        self.chunks = self.vocab.pack(lambda t: len(tok(t)["input_ids"]), max_len)
        self.queries = [phrase_spans(tok, self.vocab, c) for c in self.chunks]

    def segment(self, batch: ImageBatch) -> list[np.ndarray]:
        return self.segment_scored(batch)[0]

    def segment_scored(self, batch: ImageBatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Class maps, and per pixel the score of the detection that won it (0 where none did)."""
        images = batch.require_images(self.name)
        out, conf = [], []
        for s in range(0, len(images), self.batch_size):
            group = images[s : s + self.batch_size]
            dets = self.detect(group)
            masks = self.masks(group, [d[2] for d in dets])
            for img, (scores, classes, _), m in zip(group, dets, masks):
                sem, score = merge_masks_scored(m, scores.tolist(), classes.tolist(), img.shape[:2])
                out.append(sem)
                conf.append(score)
        return out, conf

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image: (scores (n,), Occ3D classes (n,), boxes (n, 4) xyxy pixels), best first."""
        per_image: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in images]
        for chunk, (text, spans) in zip(self.chunks, self.queries):
            inputs = self.det_proc(images=images, text=[text] * len(images), return_tensors="pt").to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            res = self.detector(**inputs)
            probs = res.logits.float().sigmoid()  # (B, Q, text)
            best = torch.stack([probs[..., a:b].amax(-1) for a, b in spans], -1)  # (B, Q, P)
            mean = torch.stack([probs[..., a:b].mean(-1) for a, b in spans], -1)
            score, which = best.max(-1)  # (B, Q)
            agree = mean.gather(-1, which[..., None])[..., 0]
            cls = torch.tensor([self.vocab.classes[i] for i in chunk], device=which.device)[which]
            boxes = res.pred_boxes.float()
            boxes = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)
            for b, img in enumerate(images):
                h, w = img.shape[:2]
                keep = (score[b] > self.box_threshold) & (agree[b] > self.text_threshold)
                xyxy = (boxes[b, keep] * torch.tensor([w, h, w, h], device=boxes.device)).clamp(min=0)
                xyxy[:, 0::2] = xyxy[:, 0::2].clamp(max=w)
                xyxy[:, 1::2] = xyxy[:, 1::2].clamp(max=h)
                per_image[b].append((score[b, keep].cpu(), cls[b, keep].cpu(), xyxy.cpu()))
        out = []
        for parts in per_image:
            scores, classes, boxes = (torch.cat(x) for x in zip(*parts))
            if self.nms_iou is not None and len(scores):
                kept = [
                    idx[nms(boxes[idx], scores[idx], self.nms_iou)]
                    for c in classes.unique()
                    for idx in [torch.nonzero(classes == c)[:, 0]]
                ]
                sel = torch.cat(kept)
            else:
                sel = torch.arange(len(scores))
            sel = sel[torch.argsort(-scores[sel], stable=True)][: self.max_detections]
            out.append((scores[sel], classes[sel], boxes[sel]))
        return out

    @torch.inference_mode()
    def masks(self, images: list[np.ndarray], boxes: list[torch.Tensor]) -> list[np.ndarray]:
        """Per image: (n, H, W) bool masks for its boxes (xyxy pixels)."""
        inputs = self.sam_proc(images=images, return_tensors="pt")
        emb = self.sam.get_image_embeddings(inputs["pixel_values"].to(self.device, self.dtype))
        out = []
        for i, (img, b) in enumerate(zip(images, boxes)):
            h, w = img.shape[:2]
            if len(b) == 0:
                out.append(np.zeros((0, h, w), bool))
                continue
            oh, ow = inputs["original_sizes"][i].tolist()
            rh, rw = inputs["reshaped_input_sizes"][i].tolist()
            scaled = (b * torch.tensor([rw / ow, rh / oh, rw / ow, rh / oh])).to(self.device, self.dtype)
            low = []
            for s in range(0, len(scaled), self.masks_per_call):
                part = scaled[s : s + self.masks_per_call]
                res = self.sam(
                    image_embeddings=emb[i : i + 1].expand(len(part), -1, -1, -1),
                    input_boxes=part[:, None, :],
                    multimask_output=False,
                )
                low.append(res.pred_masks[:, 0].float())
            m = self.sam_proc.post_process_masks(
                [torch.cat(low).cpu()], inputs["original_sizes"][i : i + 1], inputs["reshaped_input_sizes"][i : i + 1]
            )[0][:, 0]
            out.append(m.numpy().astype(bool))
        return out


@options_from(GroundedSAM)
def build_grounded_sam(
    detector: str = DEFAULT_DETECTOR, sam: str = DEFAULT_SAM, vocabulary: Mapping | None = None, **options
) -> GroundedSAM:
    """Load GroundingDINO and SAM by hub id or local folder (see `ops.hub.from_pretrained`)."""
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor, SamModel, SamProcessor

    det = from_pretrained(GroundingDinoForObjectDetection, detector, "grounded_sam detector (GroundingDINO)")
    det_proc = from_pretrained(GroundingDinoProcessor, detector, "grounded_sam detector processor")
    sam_model = from_pretrained(SamModel, sam, "grounded_sam mask model (SAM)")
    sam_proc = from_pretrained(SamProcessor, sam, "grounded_sam mask processor")
    vocab = Vocabulary.from_mapping(vocabulary) if vocabulary is not None else Vocabulary.default()
    return GroundedSAM(det, det_proc, sam_model, sam_proc, vocab, **options)
