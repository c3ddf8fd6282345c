"""The peers of scripts/bench.py: one MLP (``sizes``, ReLU, softmax cross-entropy, Adam 1e-3, float32) trained
epoch by epoch by tinynn's Trainer, PyTorch CPU, a plain NumPy loop and the two MLPClassifiers."""
import numpy as np

SIZES = (784, 256, 128, 10)


class TinynnPeer:
    """tinynn's layer API trained by its one loop, ``tinynn.training.Trainer`` (what train_mnist.py runs)."""

    name = "tinynn"

    def __init__(self, X, y, bs, seed=0, sizes=SIZES):
        import tinynn as tn
        from tinynn.training import Trainer

        self.X, self.y, self.bs = X, y, bs
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers += [tn.Linear(a, b, rng=seed + i), tn.ReLU()]
        self.model = tn.Sequential(*layers[:-1])
        self.opt = tn.optim.Adam(self.model.parameters(), lr=1e-3)
        self.trainer = Trainer(self.model, tn.SoftmaxCrossEntropy(), self.opt, batch_size=bs, rng=seed)

    def step(self, idx):
        return self.trainer.step(self.X[idx], self.y[idx])

    def epoch(self):
        self.trainer.train_epoch(self.X, self.y)

    def accuracy(self, X, y):
        return self.trainer.evaluate(X, y)[1]


class TorchPeer:
    name = "pytorch"

    def __init__(self, X, y, bs, seed=0, sizes=SIZES):
        import torch

        torch.set_num_threads(2)
        torch.manual_seed(seed)
        self.torch = torch
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.bs = bs
        nn = torch.nn
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1])
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.lossf = nn.CrossEntropyLoss()
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self):
        torch = self.torch
        order = torch.randperm(len(self.X), generator=self.gen)
        for s in range(0, len(order), self.bs):
            idx = order[s:s + self.bs]
            xb, yb = self.X.index_select(0, idx), self.y.index_select(0, idx)
            self.opt.zero_grad()
            loss = self.lossf(self.model(xb), yb)
            loss.backward()
            self.opt.step()

    def accuracy(self, X, y):
        with self.torch.no_grad():
            return float((self.model(self.torch.from_numpy(X)).argmax(1).numpy() == y).mean())


class NumpyPeer:
    """A plain NumPy MLP, written the way a course exercise would: allocating, unfused."""

    name = "numpy"

    def __init__(self, X, y, bs, seed=0, sizes=SIZES):
        rng = np.random.default_rng(seed)
        self.X, self.y, self.bs, self.rng = X, y, bs, rng
        self.W = [(rng.uniform(-1, 1, (a, b)) * np.sqrt(6 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, X):
        acts = [X]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            Z = acts[-1] @ W + b
            acts.append(np.maximum(Z, 0) if i < len(self.W) - 1 else Z)
        return acts

    def step(self, idx):
        X, y = self.X[idx], self.y[idx]
        acts = self.forward(X)
        Z = acts[-1]
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        dZ = P
        dZ[np.arange(len(y)), y] -= 1
        dZ /= len(y)
        gW, gb = [None] * len(self.W), [None] * len(self.W)
        for i in reversed(range(len(self.W))):
            gW[i] = acts[i].T @ dZ
            gb[i] = dZ.sum(0)
            if i:
                dZ = (dZ @ self.W[i].T) * (acts[i] > 0)
        self.t += 1
        bc1, bc2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        for p, g, m, v in zip(self.params, gW + gb, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= (1e-3 / bc1) * m / (np.sqrt(v / bc2) + 1e-8)

    def epoch(self):
        order = self.rng.permutation(len(self.X))
        for s in range(0, len(order), self.bs):
            self.step(order[s:s + self.bs])

    def accuracy(self, X, y):
        return float(np.mean(np.argmax(self.forward(X)[-1], axis=1) == y))


class EstimatorPeer:
    """sklearn's or tinynn's MLPClassifier, one epoch per partial_fit, with identical arguments."""

    def __init__(self, cls, name, X, y, bs, seed=0, sizes=SIZES):
        self.name = name
        self.X, self.y = X, y
        self.est = cls(hidden_layer_sizes=sizes[1:-1], batch_size=bs, learning_rate_init=1e-3, alpha=1e-4,
                       random_state=seed)
        self.classes = np.arange(10)

    def epoch(self):
        self.est.partial_fit(self.X, self.y, classes=self.classes)

    def accuracy(self, X, y):
        return float(self.est.score(X, y))


def make_peer(name, X, y, bs, sizes=SIZES):
    if name == "tinynn":
        return TinynnPeer(X, y, bs, sizes=sizes)
    if name == "pytorch":
        return TorchPeer(X, y, bs, sizes=sizes)
    if name == "numpy":
        return NumpyPeer(X, y, bs, sizes=sizes)
    if name == "sklearn.MLPClassifier":
        from sklearn.neural_network import MLPClassifier

        return EstimatorPeer(MLPClassifier, name, X, y, bs, sizes=sizes)
    if name == "tinynn.MLPClassifier":
        import tinynn as tn

        return EstimatorPeer(tn.MLPClassifier, name, X, y, bs, sizes=sizes)
    raise ValueError(name)
