"""The configuration of a ``scripts/train_mnist.py`` run, with one set of rules (types, ranges, known keys) for
the command line and for the configuration a checkpoint stores, which ``--resume`` continues.

``check_args(config)`` checks the options of a command line (ValueError naming the option, e.g.
``--batch-size``); ``load_resume(path, defaults, ...)`` reads a checkpoint and checks its stored configuration
with the same rules (every key known, every required key present) and its model arrays against the model that
configuration describes, all before a model is built or any array's data is read; refusals are
``FileFormatError`` naming the file and the field (``metadata entry config.batch_size ...``)."""
from __future__ import annotations

from ._filecheck import COUNTER_MAX, MetaReader, _r, check_model_arrays, mlp_state_layout
from .errors import short

MAX_WIDTH = 1 << 20                 # units of one hidden layer
MAX_LAYERS = 1000                   # hidden layers
MNIST_TRAIN = 60000                 # images of MNIST's training set: the split's sizes are within it
MAX_SPEC = 1000                     # characters of --augment's spec
MAX_PATH = 4096                     # characters of --data-dir


def _check(r: MetaReader):
    """The rules, applied to ``r``'s entries (a checkpoint's config or the command line's options)."""
    from . import augment, init, optim, schedules
    from .layers import ACTIVATIONS

    r.int("epochs", lo=1, hi=COUNTER_MAX)
    r.int("batch_size", lo=1, hi=1 << 24)
    hidden = r.str("hidden")
    widths = [h.strip() for h in hidden.split(",") if h.strip()]
    if len(widths) > MAX_LAYERS:
        r.fail(f"{r.name('hidden')} lists {len(widths)} hidden layers; at most {MAX_LAYERS}")
    for h in widths:
        if not (h.isdigit() and 1 <= int(h) <= MAX_WIDTH):
            r.fail(f"{r.name('hidden')} must be a comma list of layer widths, integers in [1, {MAX_WIDTH}] "
                   f"(e.g. 1024,1024), got {_r(hidden)}")
    r.str("activation", ACTIVATIONS, table=" (tinynn.ACTIVATIONS)")
    r.str("optimizer", optim.OPTIMIZERS, table=" (tinynn.optim.OPTIMIZERS)")
    r.number("lr", lo=0)
    r.str("schedule", schedules.SCHEDULES, table=" (tinynn.schedules.SCHEDULES)")
    r.number("weight_decay", lo=0)
    r.number("dropout", lo=0, hi=1, hi_open=True)
    r.number("input_dropout", lo=0, hi=1, hi_open=True)
    r.bool("batch_norm")
    r.str("init", init.INITIALIZERS, table=" (tinynn.init.INITIALIZERS)")
    r.int("seed", lo=0, hi=2**63 - 1)
    r.int("train_size", lo=1, hi=MNIST_TRAIN, null=True)
    r.int("val_size", lo=0, hi=MNIST_TRAIN - 1)
    r.bool("standardize")
    spec = r.str("augment", null=True)
    if spec is not None:
        if len(spec) > MAX_SPEC:
            r.fail(f"{r.name('augment')} is a spec of {len(spec)} characters; at most {MAX_SPEC}")
        try:
            augment.make(spec)
        except (ValueError, TypeError) as e:
            r.fail(f"{r.name('augment')}: {short(str(e), 300)}")
    if r.has("data_dir"):                                    # where the run read MNIST (--resume reuses it)
        folder = r.str("data_dir", null=True)
        if folder is not None and not 0 < len(folder) <= MAX_PATH:
            r.fail(f"{r.name('data_dir')} must be a folder name of 1 to {MAX_PATH} characters, got {_r(folder)}")
    if r.int("snapshots", lo=0, hi=10000) == 1:
        r.fail(f"{r.name('snapshots')} must be 0 (off) or a number of cycles >= 2, got 1")
    r.bool("swa")
    r.number("ema", lo=0, hi=1, hi_open=True)                 # 0: off, else the decay in (0, 1)
    # the parallel options (scripts/train_mnist.py --parallel), where the configuration has them
    if r.has("parallel"):
        from .strategy import STRATEGIES

        r.str("parallel", STRATEGIES)
    if r.has("microbatches"):
        r.int("microbatches", lo=1, hi=1 << 20)
    if r.has("pipeline_schedule"):
        from .parallel.pipeline import SCHEDULES as PIPELINE

        r.str("pipeline_schedule", PIPELINE)
    if r.has("staleness_bound"):
        r.int("staleness_bound", lo=0, hi=COUNTER_MAX, null=True)
    if r.has("overlap"):
        r.bool("overlap")
    if r.has("bucket_bytes"):
        r.int("bucket_bytes", lo=0, hi=1 << 40)


def widths(config):
    """The hidden layer widths of a checked configuration."""
    return [int(h) for h in str(config["hidden"]).split(",") if h.strip()]


class _Options(MetaReader):
    """A MetaReader over the command line's options: names them as options, raises ValueError."""

    def name(self, key):
        return "--" + key.replace("_", "-")

    def fail(self, problem):
        raise ValueError(problem)


def check_args(config):
    """Refuse (ValueError naming the option) command-line options outside the rules."""
    _check(_Options("the command line", dict(config)))


def check_config(path, meta, defaults, optional=()):
    """A checkpoint's stored configuration (``meta["config"]``) under the rules: every key one of ``defaults``'
    keys, every key present but those in ``optional`` (options newer than the checkpoint; their defaults are
    filled in). Returns the configuration; FileFormatError naming the file and the field otherwise."""
    r = MetaReader(path, meta).sub("config")
    r.only(defaults)
    missing = sorted(k for k in defaults if k not in r.meta and k not in optional)
    if missing:
        r.fail(f"metadata entr{'y' if len(missing) == 1 else 'ies'} "
               f"{', '.join('config.' + k for k in missing[:8])}{' ...' if len(missing) > 8 else ''} missing "
               "(a checkpoint of scripts/train_mnist.py stores every option of its run)")
    config = {**{k: defaults[k] for k in optional}, **r.meta}
    _check(MetaReader(path, config, "config."))
    return config


def load_resume(path, defaults, optional=(), epochs=None, input_width=784, n_classes=10, dtype="float32"):
    """(arrays, meta, config) of the checkpoint ``--resume`` continues: its configuration checked with the
    command line's rules and its model arrays against the model that configuration describes (input_width -
    hidden - n_classes; ``input_width`` may be a function of the stored configuration), from the headers, before
    any array's data is read or any model built. ``epochs`` (the command line's) replaces the stored one."""
    from . import io

    def plan(meta, headers):
        config = check_config(meta.source, meta, defaults, optional)
        sizes = [input_width(config) if callable(input_width) else input_width] + widths(config) + [n_classes]
        layout = mlp_state_layout(sizes, config["batch_norm"], config["dropout"], config["input_dropout"])
        check_model_arrays(meta.source, headers, layout, dtype)

    arrays, meta = io.load_npz(path, kind="checkpoint", plan=plan)
    config = check_config(meta.source, meta, defaults, optional)
    if epochs is not None:
        config["epochs"] = epochs
    return arrays, meta, config

