"""Runtime: what a sensor script holds. Load once, then ``classify`` per sample."""
import os

from .errors import InputError
from .exits import summarize
from .model import Model


class Result:
    """One answer: the class, how sure, and where it came from.

    ``label`` is the class index and ``name`` its name; ``scores`` are the
    softmax probabilities of ``logits`` (the last layer's raw outputs);
    ``entropy`` is their normalized entropy in [0, 1]; ``exit`` names the
    tier that answered ("local" for a model on this device).
    """
    __slots__ = ("label", "name", "confidence", "scores", "logits", "entropy", "exit")

    def __init__(self, label, name, confidence, scores, logits, entropy, exit):
        self.label = label
        self.name = name
        self.confidence = confidence
        self.scores = scores
        self.logits = logits
        self.entropy = entropy
        self.exit = exit

    def __repr__(self):
        return (f"Result(label={self.label}, name={self.name!r}, "
                f"confidence={self.confidence:.4f}, entropy={self.entropy:.4f}, "
                f"exit={self.exit!r})")


class Runtime:
    """Classify samples with a packed model.

    >>> rt = Runtime("models/mnist-mlp.h5")
    >>> result = rt.classify(frame)          # frame: uint8 array (28, 28)
    >>> result.label, result.confidence, result.exit

    ``model`` is a path to a packed file or a :class:`Model`. ``backend``
    chooses the binary kernel ("c" or "numpy"; default: C when built, unless
    the environment variable EDGEBNN_BACKEND says otherwise).
    """

    def __init__(self, model, backend=None):
        from .format import load_model
        from .kernels import get_kernels
        kernels = get_kernels(backend)
        if isinstance(model, Model):
            self.model = model if model.kernels is kernels else model.with_kernels(kernels)
        else:
            self.model = load_model(os.fspath(model), kernels=kernels)
        self._names = self.model.classes

    @property
    def backend(self):
        """"c" or "numpy": which implementation runs the binary layers."""
        return self.model.backend

    @property
    def classes(self):
        return list(self._names)

    def classify(self, x):
        """Classify one sample; raises InputError on a sample that does not fit."""
        model = self.model
        return self._result(model.forward(model.check_input(x)).copy())

    def classify_batch(self, x):
        """Classify many samples (first axis); the same answers as a loop."""
        logits = self.model.forward_batch(self.model.check_batch(x))
        return [self._result(row) for row in logits]

    def _result(self, logits):
        label, confidence, scores, entropy = summarize(logits)
        if entropy != entropy:
            raise InputError("the model's outputs are not finite for this input "
                             "(values far outside the trained range?)")
        return Result(label, self._names[label], confidence, scores, logits, entropy, "local")
