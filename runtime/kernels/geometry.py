"""The geometry of a fused binary conv + max pool, shared by both backends.

Field for field the C struct ``bnn_conv_shape`` of csrc/bnn.h.
"""
from typing import NamedTuple


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
        return (self.height + 2 * self.pad_h - self.kernel_h) // self.stride_h + 1

    @property
    def conv_w(self):
        return (self.width + 2 * self.pad_w - self.kernel_w) // self.stride_w + 1

    @property
    def out_h(self):
        return self.conv_h // self.pool_h

    @property
    def out_w(self):
        return self.conv_w // self.pool_w

    @property
    def in_bytes(self):
        """Bytes of the input: packed signs, or one uint8 per value."""
        values = self.height * self.width * self.channels
        return values if self.uint8_input else values // self.channels * -(-self.channels // 8)

    @property
    def out_bytes(self):
        return self.out_h * self.out_w * -(-self.out_channels // 8)
