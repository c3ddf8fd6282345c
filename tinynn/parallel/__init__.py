"""Parallel training on MPI (mpi4py): the one place in tinynn that talks to other processes.

    mpiexec -n 2 python scripts/train_mnist.py --parallel data|async|pipeline|tensor ...

From Python (run the script under ``mpiexec -n N``)::

    import tinynn as tn
    from tinynn import parallel
    from tinynn.training import Trainer, build_mlp

    model = build_mlp([784, 256, 128, 10], seed=0)                   # the same on every rank
    dp = parallel.DataParallel(model, batch_size=128)                 # checks ranks agree, broadcasts rank 0's θ
    opt = tn.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model, tn.SoftmaxCrossEntropy(), opt, batch_size=128, rng=0, strategy=dp)
    trainer.train_epoch(X, y)                                          # each rank computes its slice of each batch
    if dp.is_root: ...                                                # rank 0 writes files

Each strategy is a ``tinynn.strategy.Strategy`` that the one training loop (``Trainer(..., strategy=...)``)
asks what this process does; ``tinynn.strategy.STRATEGIES`` names them (data, async, pipeline, tensor).
Strategies: ``DataParallel`` (+ ``SyncBatchNorm``) in data.py; ``ParameterServer``/``Worker`` (asynchronous SGD,
staleness, SSP bound) and ``AsyncSGD`` (its strategy) in async_sgd.py; ``Pipeline`` (GPipe, 1F1B) and
``PipelineParallel`` in pipeline.py; ``ColumnParallelLinear``, ``RowParallelLinear``, ``tensor_parallel``,
``gather_model`` and ``TensorParallel`` in tensor.py; the analytic cost model in
cost_model.py. mpi4py is imported on first use: importing this package works without it.
"""
from .async_sgd import AsyncSGD, ParameterServer, StalenessLog, Worker
from .comm import Group, LocalGroup, check_replicas, check_same, install_abort_hook, model_signature, world
from .data import DataParallel, SyncBatchNorm, convert_sync_batchnorm, per_rank_dropout
from .pipeline import Pipeline, PipelineParallel, partition
from .tensor import ColumnParallelLinear, RowParallelLinear, TensorParallel, gather_model, tensor_parallel

__all__ = ["world", "Group", "LocalGroup", "check_same", "check_replicas", "model_signature", "install_abort_hook",
           "DataParallel", "SyncBatchNorm", "convert_sync_batchnorm", "per_rank_dropout", "ParameterServer", "Worker",
           "StalenessLog", "Pipeline", "partition", "ColumnParallelLinear", "RowParallelLinear", "tensor_parallel",
           "gather_model", "AsyncSGD", "PipelineParallel", "TensorParallel"]
