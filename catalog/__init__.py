"""What fitagent knows: models, quantizations, ggml types and GPUs (``types``), read from the data
files (``files``), validated (``parse``) and looked up by the names people use (``lookup``); and the
errors every layer raises (``errors``).

The probe and the estimator both read it; it reads neither. Import from the submodules: this
package's ``__init__`` stays empty so that ``fitagent probe`` does not pay for the dataclasses.
"""
