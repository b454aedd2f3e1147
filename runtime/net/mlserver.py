"""An MLServer runtime for packed models: scale out with MLServer's workers and batching.

    pip install "edgebnn[mlserver]"
    mlserver start FOLDER       # FOLDER holds model-settings.json (and settings.json)

with a ``model-settings.json`` such as (examples/mlserver-big/ has a complete one)::

    {"name": "big", "implementation": "edgebnn.mlserver.EdgeBNNRuntime",
     "parameters": {"uri": "./mnist-mlp.h5", "version": "1",
                    "extra": {"section": null, "backend": null}},
     "max_batch_size": 32, "max_batch_time": 0.001}

``uri`` names a packed model file (or a folder holding one, as KServe's
storage initializer leaves it), or a DDNN file with ``extra.section``
(``devices/I``, ``edge``, ``local``, ``cloud``); ``extra.trusted_keys``, a
list of public key files, serves only a file signed by one of them. The model answers exactly as
``edgebnn-serve`` does (the same endpoint code: metadata with the batch
axis, the same outputs and checks), so a device's ``RemoteModel`` and a
DDNN ``Coordinator`` talk to either without a change. Batching across
requests (``max_batch_size``, ``max_batch_time``) and parallel workers
(``parallel_workers`` in settings.json) are MLServer's own.
"""
import glob
import os

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError, InvalidModelURI
from mlserver.types import InferenceResponse, MetadataModelResponse
from mlserver.utils import get_model_uri

from .endpoints import load_endpoint
from ..errors import EdgeError


class EdgeBNNRuntime(MLModel):
    """Serves one edgebnn endpoint (a packed model or a DDNN section) inside MLServer."""

    async def load(self):
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        path = await get_model_uri(self.settings)
        if os.path.isdir(path):        # KServe's storage initializer leaves a folder
            files = sorted(glob.glob(os.path.join(path, "*.h5")))
            if len(files) != 1:
                raise InvalidModelURI(self.name, f"{path} holds {len(files)} .h5 files, not 1")
            path = files[0]
        self.endpoint = load_endpoint(path, self.name, extra.get("section"), extra.get("backend"),
                                      extra.get("trusted_keys"))
        return True

    async def metadata(self):
        metadata = dict(self.endpoint.metadata, name=self.name,
                        versions=[self.version] if self.version else [])
        return MetadataModelResponse(**metadata)

    async def predict(self, payload):
        endpoint = self.endpoint
        try:
            inputs = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        except (ValueError, TypeError, OverflowError) as error:    # e.g. 300 as UINT8
            raise InferenceError(f"the input cannot be read as its datatype says: {error}") from None
        try:
            outputs = endpoint.check(endpoint.compute(endpoint.prepare(inputs)))
        except (EdgeError, ValueError) as error:
            raise InferenceError(str(error)) from None
        wanted = [o.name for o in payload.outputs] if payload.outputs else endpoint.outputs
        unknown = [name for name in wanted if name not in outputs]
        if unknown:
            raise InferenceError(f"unknown output {unknown[0]!r}; this model gives "
                                 f"{', '.join(endpoint.outputs)}")
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output(name, outputs[name])
                                          for name in wanted])
