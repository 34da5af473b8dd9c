"""Run open_clip's own trainer with clipline's model configs registered.

    python openclip_train.py [open_clip_train.main arguments]

open_clip 3.3's trainer needs webdataset <= 0.2.86 (its pipeline raises
KeyError 'fname' on webdataset 1.0): put such a webdataset first on
PYTHONPATH (`make install` keeps one in $VENV/opt/webdataset-0.2.86).
"""

import sys
from pathlib import Path

import open_clip
from open_clip_train.main import main

CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "models" / "configs"

if __name__ == "__main__":
    open_clip.add_model_config(CONFIGS)
    main(sys.argv[1:])
