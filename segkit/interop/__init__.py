"""Former home of the nnU-Net v2 model-folder reader, now `segkit.models.nnunet` (issue #26).

`segkit.interop.nnunet` stays importable (docs and user scripts name it): it is the same module
object as `segkit.models.nnunet`, registered here under the old name.
"""

import sys

from segkit.models import nnunet, nnunet_checkpoint

sys.modules[__name__ + ".nnunet"] = nnunet
sys.modules[__name__ + ".nnunet_checkpoint"] = nnunet_checkpoint

__all__ = ["nnunet", "nnunet_checkpoint"]
