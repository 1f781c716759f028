"""tt-metal's models behind our model contract: ``generators.py`` finds tt-metal's vLLM generator classes
(both package layouts), ``adapter.py`` wraps one so the runner calls it like any contract model,
``signatures.py`` passes each release only what it takes, ``sampling.py`` turns the runner's device sampling
parameters into tt-metal's ``SamplingParams``."""
