#!/bin/sh
# Makes Debian's PyTorch 1.13 + torchvision 0.14 (and PIL, to decode the photos) importable by /usr/bin/python3,
# for bench/train/pytorch_embed.py. Installs only when the import fails. Debian's build, not pip's: nothing but
# Debian's mirror is reachable from these machines. Run as root (or with sudo).
set -eu
if /usr/bin/python3 -c "import torch, torchvision, PIL" 2>/dev/null; then
  /usr/bin/python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'already installed')"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y python3-torch python3-torchvision python3-pil; then
  # A fresh machine may have no package lists yet.
  apt-get update
  apt-get install -y python3-torch python3-torchvision python3-pil
fi
/usr/bin/python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
