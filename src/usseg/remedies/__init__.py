"""Remedies for the simulator-to-real gap, one module per family (issue 17).

- `normalise`: per-image intensity normalisation inside the field of view.
- `us_augment`: ultrasound-specific random transforms (depth attenuation,
  acoustic shadow, haze, speckle) and a generic strong augmentation.
- `style`: target style without labels (histogram matching, Fourier domain adaptation).
- `tta`: test-time adaptation (batch-norm statistics re-estimated on target frames).
- `semi`: semi-supervised helpers (pseudo-labels, mean teacher).
- `gap_stats`: statistics of the gap study (paired subject-level deltas, when to stop,
  learning curve, leave-one-subject-out splits).
- `domain_check`: the domain classifier's AUC before and after a remedy's harmonisation.
- `spec`: the typed remedy settings parsed from an experiment's config block.

docs/remedies.md describes each remedy, its formula and source.
"""
