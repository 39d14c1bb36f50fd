"""`pln bench`: throughput, memory, parameters and FLOPs of the paper's configurations.

For each configuration (2D-TAN TACoS N=128 with 8 layers of 5x5; PLN 32-128 on TACoS; PLN 16-64
on ActivityNet Captions and Charades-STA) at the given width and batch, it measures

* training: the engine's training step (forward, joint loss, backward, Adam) on random input of
  the real shapes -> step time, queries/s, peak memory, parameters, FLOPs (torch's counter);
* inference: the forward pass alone at the evaluation batch size;
* evaluation: the product's evaluation path over a synthetic test split of the real feature
  shapes: loader, unit feed, forward, top-5 with NMS for every stage and Strategy 2, metrics
  (``pln.engine.predict_split.predict_split`` and ``split_metrics``);
* the data path: the training loader (``data.num_workers`` = ``--workers``) and the unit feed,
  without the model: the queries/s it can supply.

Each configuration runs twice in the same process: as we run it (``ours``: the banded ConvNet
that convolves only the cells the output needs and the 2D map's hand-written backward; ``--bf16``
adds bf16 autocast) and as the plain eager fp32 reference of the same computation (dense
convolutions over the whole padded map, autograd's backward of the 2D map), so
the printed ratio compares like with like on one machine. ``--sweep`` adds variants of the
ConvNet's speed-only settings (``model.conv_block``, ``model.conv_channels_last``).

On CUDA at width 512 and batch 32 it prints the targets of the project against the measured
figures, and the device-hours of every training run of ``config/paper.yaml`` at the measured
training throughput.

Modules, one concern each: :mod:`~pln.bench.configs` (what is measured), :mod:`~pln.bench.args`
(the command line; imports no torch, so ``pln --help`` stays fast), :mod:`~pln.bench.steps`
(training and inference timing on random input), :mod:`~pln.bench.flops`,
:mod:`~pln.bench.datapath` (evaluation path and data path over synthetic splits),
:mod:`~pln.bench.targets`, :mod:`~pln.bench.hours` (device-hours of the paper plan) and
:mod:`~pln.bench.run` (the measurement loop, the CSV and the printed lines).
"""
