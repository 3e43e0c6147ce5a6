"""A deterministic demo dataset shaped like "US simulation & segmentation".

The reference dataset (Kaggle ``ignaciorlando/ussimandsegm``) cannot be
downloaded where the workflow runs, so this module draws one with the same
layout, naming, quirks and problems:

- ``AUS``: simulator frames (PNG, ``ct<N>-<k>.png``), every one with a crisp
  colour mask that may hold all eight organs; a grey-10 padding strip at the
  bottom, (10,10,10) in the mask; one subject's masks palette-indexed (mode P),
  others with an alpha channel.
- ``RUS``: real-scanner frames (JPG, ``<letters><k>.jpg``); masks only for
  60 test frames of 4 subjects (h 26, a 16, g 10, b 8) plus one orphan mask;
  only liver, kidney, gallbladder, spleen and vessels are labeled; borders are
  anti-aliased; one mask has a (10,0,10) background tint.
- The domain gap: simulator frames are dark and clean, real frames carry
  multiplicative speckle, log compression (a broad mid-range histogram), blur
  and JPEG artefacts, patchier surrounding tissue and a deeper depth setting
  (smaller anatomy). Small organs (adrenal, pancreas, gallbladder) are rare.

Every frame is a B-mode image: a sector field of view from a probe at the top
centre, depth attenuation, shadows below bone, enhancement below fluid. A
subject's anatomy (organ shapes, positions and elevations) comes from a
per-subject random generator; its frames differ by probe shift, tilt,
compression, a smooth deformation and the elevation of the imaging plane,
which is what makes thin organs come and go.

Each file depends only on (seed, modality, subject, frame): the per-image
random generators derive from a SeedSequence of those, and PNG/JPEG are written
with fixed settings and no metadata, so the bytes are the same whatever the
order of generation or the number of worker processes.

Modules: `anatomy` (organ codes, subjects' organs, frames' poses), `rendering`
(field of view, label maps, echoes), `quirks` (mask formats, padding strip,
tint, encoder settings) and `plan` (sizes, the file list and the run).
"""

from usseg.demo.anatomy import DEFAULT_CLASSES, LIVER, ORGANS, frame_pose, subject_anatomy
from usseg.demo.plan import SIZES, FrameTask, SizeSpec, frame_labels, generate_demo_dataset, plan
from usseg.demo.quirks import TINT_RGB, real_mask, simulator_mask
from usseg.demo.rendering import PADDING_GREY, _strip_rows, label_map, render_image

__all__ = [
    "DEFAULT_CLASSES",
    "LIVER",
    "ORGANS",
    "PADDING_GREY",
    "SIZES",
    "TINT_RGB",
    "FrameTask",
    "SizeSpec",
    "_strip_rows",
    "frame_labels",
    "frame_pose",
    "generate_demo_dataset",
    "label_map",
    "plan",
    "real_mask",
    "render_image",
    "simulator_mask",
    "subject_anatomy",
]
