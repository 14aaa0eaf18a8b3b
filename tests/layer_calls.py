"""Building a layer on a backend and running its forward pass alone, outside a model."""


def built(layer, ops, input_shape):
    layer._bind(ops)
    layer._maybe_build(input_shape)
    return layer


def run(layer, x, lengths=None, training=False):
    from cgru.backends.base import check_lengths

    if lengths is not None:
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
    return layer._forward(x, training, lengths)
