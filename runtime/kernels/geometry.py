"""The geometry of a fused binary conv + max pool, shared by both backends and the converters.

``ConvShape`` is field for field the C struct ``bnn_conv_shape`` of csrc/bnn.h;
``conv_size`` is the C kernel's ``bnn_conv_size``, and ``bitpack.sign_bytes``
its ``bnn_sign_bytes`` (tests check that each pair agrees).
"""
from typing import NamedTuple

from ..bitpack import sign_bytes


def conv_size(size, kernel, stride, pad):
    """Positions of a convolution along one axis; 0 when the kernel does not fit the padded input."""
    if size + 2 * pad < kernel:
        return 0
    return (size + 2 * pad - kernel) // stride + 1


class ConvShape(NamedTuple):
    height: int
    width: int
    channels: int
    uint8_input: int       # 0: packed signs in; 1: uint8 values in
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    pool_h: int
    pool_w: int

    @property
    def conv_h(self):
        return conv_size(self.height, self.kernel_h, self.stride_h, self.pad_h)

    @property
    def conv_w(self):
        return conv_size(self.width, self.kernel_w, self.stride_w, self.pad_w)

    @property
    def out_h(self):
        return self.conv_h // self.pool_h

    @property
    def out_w(self):
        return self.conv_w // self.pool_w

    @property
    def in_bytes(self):
        """Bytes of the input: packed signs, or one uint8 per value."""
        pixels = self.height * self.width
        return pixels * (self.channels if self.uint8_input else sign_bytes(self.channels))

    @property
    def out_bytes(self):
        return self.out_h * self.out_w * sign_bytes(self.out_channels)
