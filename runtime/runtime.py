"""Runtime: what a sensor script holds. Load once, then ``classify`` per sample."""

from .errors import InputError
from .model import Model
from .result import Exit, Result


class Runtime:
    """Classify samples with a packed model.

    >>> rt = Runtime("models/mnist-mlp.h5")
    >>> result = rt.classify(frame)          # frame: uint8 array (28, 28)
    >>> result.label, result.confidence, result.exit

    ``model`` is a path to a packed file, the name of a shipped one
    (``edgebnn.models.available()``) or a :class:`Model`. ``backend``
    chooses the binary kernel ("c" or "numpy"; default: C when built, unless
    the environment variable EDGEBNN_BACKEND says otherwise).

    With ``remote`` (a :class:`edgebnn.net.remote.RemoteModel`) the model is the
    little net of a Big-Little cascade and ``policy`` (a
    :class:`edgebnn.tiers.cascade.Policy` or one of its kinds: "local",
    "sequential", "parallel", "remote") says when the remote model is asked;
    ``counters`` then counts answers per tier, remote calls and errors.

    ``limits`` (``edgebnn.Limits``) bounds a loaded model's work per sample and
    memory; the default is sized for a Raspberry Pi 2 (see edgebnn.limits).
    ``trusted_keys`` (public key files, ``edgebnn-sign keygen``) loads only a
    file signed by one of them (edgebnn.packed.signing).
    """

    def __init__(self, model, backend=None, remote=None, policy="sequential", limits=None,
                 trusted_keys=None):
        from . import models
        from .packed.format import load_model
        from .kernels import get_kernels
        kernels = get_kernels(backend)
        if isinstance(model, Model):
            if trusted_keys is not None:
                raise ValueError("trusted_keys checks a model file's signature; a Model object "
                                 "has no file: load it with Runtime(path, trusted_keys=...)")
            if model.kernels is not kernels or limits is not None:
                model = model.with_kernels(kernels, limits)
            self.model = model
        else:
            self.model = load_model(models.resolve(model), kernels=kernels, limits=limits,
                                    trusted_keys=trusted_keys)
        self.local = Local(self.model)
        self.cascade = None
        if remote is not None:
            from .tiers.cascade import Cascade, Policy
            policy = policy if isinstance(policy, Policy) else Policy(policy)
            self.cascade = Cascade(self.local, remote, policy)
        self._tier = self.cascade or self.local     # what answers classify

    @property
    def counters(self):
        """Answers per tier, remote calls and remote errors (cascades only)."""
        return dict(self.cascade.counters) if self.cascade else None

    @property
    def backend(self):
        """"c" or "numpy": which implementation runs the binary layers."""
        return self.model.backend

    @property
    def classes(self):
        return list(self.local.classes)

    def classify(self, x):
        """Classify one sample; raises InputError on a sample that does not fit."""
        return self._tier.classify(x)

    def classify_batch(self, x):
        """Classify many samples (first axis); the same answers as a loop."""
        return self._tier.classify_batch(x)

    def classify_local(self, x):
        """Classify one sample with the model on this device only."""
        return self.local.classify(x)

    def classify_batch_local(self, x):
        """Classify many samples with the model on this device only."""
        return self.local.classify_batch(x)

    def close(self):
        """Release the remote tier's connections and threads (cascades)."""
        if self.cascade is not None:
            self.cascade.close()


class Local:
    """The tier on this device: a model's answers as ``Result``s, exit "local". A cascade
    asks it first; a runtime without a remote model has only it."""

    def __init__(self, model):
        self.model, self.classes = model, model.classes

    def classify(self, x):
        model = self.model
        logits = model.forward(model.check_input(x))      # this thread's reused buffer
        result = Result(logits.copy(), self.classes, Exit.LOCAL,
                        summary=model.kernels.summarize(logits))
        if not result.finite:
            raise InputError(_NOT_FINITE)
        return result

    def check_batch(self, x):
        """``x`` as the model takes a batch, or InputError."""
        return self.model.check_batch(x)

    def classify_batch(self, x):
        """The kernel layers take the batch in one call, several samples per weight read:
        several times the samples per second of a loop, with the same logits bit for bit.
        Float layers multiply the whole batch at once (BLAS), whose sums may round in the
        last bits unlike one sample's."""
        logits = self.model.forward_batch(self.check_batch(x))
        summaries = self.model.kernels.summarize_rows(logits)
        if any(entropy != entropy for _, _, entropy in summaries):
            raise InputError(_NOT_FINITE)
        return [Result(row, self.classes, Exit.LOCAL, summary=summary)
                for row, summary in zip(logits, summaries)]


_NOT_FINITE = ("the model's outputs are not finite for this input "
               "(values far outside the trained range?)")
