"""EIE (Han et al., ISCA 2016): sparse weights times sparse activations on per-PE queues."""
