"""Prediction uncertainty: per-voxel maps, per-structure scores, and the review threshold's file (owner).

Per voxel, on the input grid (`segkit predict --uncertainty`):

- ``entropy``: the normalised entropy of the final mean probabilities (the mean over folds of
  each fold's probabilities, each fold's logits averaged over the test-time mirrorings, and over
  the members of an ensemble of configurations): softmax plans H(p) / log K; region (sigmoid)
  plans the mean over regions of the binary entropy / log 2. 0 = certain, 1 = uniform.
- ``disagreement`` (two or more folds): the folds' mutual information, H(mean_f p_f) -
  mean_f H(p_f), normalised the same way: the part of the entropy that comes from folds
  disagreeing rather than each fold being unsure (BALD's quantity). Computed in each stage's
  preprocessed space and reverted to the input grid like the probabilities.

Per structure (each of the plan's ``outputs``), with p its probability and M its voxels in the
label map:

- ``expected_dice``: the Dice the model expects of itself if the truth were drawn voxel by
  voxel from p: 2 sum(p M) / (sum(p) + sum(M)); for an empty M the chance that the structure
  is truly absent, exp(-sum(p)) (Dice's empty-case rule gives 1 then, else 0);
- ``score`` = 1 - expected_dice; ``mean_entropy`` and ``disagreement`` over M.

The case's ``score`` is the mean of its structures' scores, i.e. one minus the mean Dice the
model expects, the quantity `segkit find-best` ranks by. A review threshold on it is calibrated
on the model's own cross-validation predictions (`segkit.evaluation.uncertainty_calibration`)
and stored beside the model as ``uncertainty_calibration.json`` (format and reader:
`segkit.models.calibration`; `segkit export-model` packages it).
"""

from __future__ import annotations

import math

import numpy as np

from segkit.inference.regions import softmax_channel_values
from segkit.plans import Plans, label_mode_of, output_label_values

SCORE_NAME = "mean structure (1 - expected Dice)"
EPSILON = 1e-12
CHUNK_VOXELS = 1 << 22


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of Bernoulli(p), elementwise (float32)."""
    q = np.clip(p.astype(np.float32, copy=False), EPSILON, 1 - EPSILON)
    return -(q * np.log(q) + (1 - q) * np.log1p(-q))


def normalised_entropy(probabilities: np.ndarray, label_mode: str) -> np.ndarray:
    """(z, y, x) float32 entropy in [0, 1] of (K, z, y, x) probabilities (softmax over K, or K sigmoid regions)."""
    channels = probabilities.shape[0]
    flat = probabilities.reshape(channels, -1)
    out = np.empty(flat.shape[1], dtype=np.float32)
    for start in range(0, flat.shape[1], CHUNK_VOXELS):   # bounded temporaries on large volumes
        chunk = flat[:, start:start + CHUNK_VOXELS].astype(np.float32)
        if label_mode == "sigmoid":
            out[start:start + chunk.shape[1]] = _binary_entropy(chunk).mean(axis=0) / math.log(2)
        else:
            clipped = np.clip(chunk, EPSILON, 1.0)
            out[start:start + chunk.shape[1]] = -(chunk * np.log(clipped)).sum(axis=0) / math.log(max(channels, 2))
    return np.clip(out, 0.0, 1.0).reshape(probabilities.shape[1:])


def structure_channels(plans: Plans) -> dict[str, tuple[int, list[int]]]:
    """Each output structure's probability channel and its label values."""
    outputs = output_label_values(plans)
    if label_mode_of(plans) == "sigmoid":
        return {name: (index, [int(v) for v in values]) for index, (name, values) in enumerate(outputs.items())}
    channel_values = softmax_channel_values(outputs)
    return {name: (channel_values.index(int(values[0])), [int(v) for v in values]) for name, values in outputs.items()}


def structure_scores(probabilities: np.ndarray, labels: np.ndarray, plans: Plans, entropy: np.ndarray | None = None,
                     disagreement: np.ndarray | None = None) -> dict[str, dict]:
    """Per output structure: expected Dice, score (1 - expected Dice), mean entropy and disagreement over its voxels."""
    scores = {}
    for name, (channel, values) in structure_channels(plans).items():
        p = probabilities[channel]
        mask = np.isin(labels, values)
        predicted = int(np.count_nonzero(mask))
        total = float(p.sum(dtype=np.float64))
        if predicted:
            expected = 2.0 * float(p[mask].sum(dtype=np.float64)) / (total + predicted)
        else:
            expected = math.exp(-total)   # chance that the structure is truly absent
        entry = {"expected_dice": round(expected, 5), "score": round(1.0 - expected, 5), "voxels": predicted}
        if entropy is not None:
            entry["mean_entropy"] = round(float(entropy[mask].mean()), 5) if predicted else 0.0
        if disagreement is not None:
            entry["disagreement"] = round(float(disagreement[mask].mean()), 5) if predicted else 0.0
        scores[name] = entry
    return scores


def case_score(structures: dict[str, dict]) -> float:
    """The case's uncertainty score: the mean of its structures' scores (0 when the plan has none)."""
    values = [entry["score"] for entry in structures.values()]
    return round(float(np.mean(values)), 5) if values else 0.0


def fold_disagreement(mean_probabilities: np.ndarray, mean_fold_entropy: np.ndarray, label_mode: str) -> np.ndarray:
    """Normalised mutual information H(mean) - mean H(fold), clipped at 0 (float rounding), in [0, 1]."""
    return np.clip(normalised_entropy(mean_probabilities, label_mode) - mean_fold_entropy, 0.0, 1.0)


def summary(structures: dict[str, dict], calibration: dict | None, folds: int) -> dict:
    """A case's uncertainty entry for report.json: score, structures, and the review flag when calibrated."""
    score = case_score(structures)
    entry: dict = {"score": score, "score_name": SCORE_NAME, "folds": folds, "structures": structures}
    if calibration is not None:
        entry["threshold"] = calibration["threshold"]
        entry["flagged"] = score >= float(calibration["threshold"])
    return entry
