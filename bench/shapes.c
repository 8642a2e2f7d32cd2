/*
 * shapes.c - the ResNet18/50 convolution shapes (shapes.h).
 *
 * ResNet18 = conv1 + 4 stages of 2 BasicBlocks (3x3, 3x3; 1x1 stride-2 downsample on stages
 * 2-4). ResNet50 = conv1 + stages of 3/4/6/3 Bottlenecks (1x1 reduce, 3x3 carrying the stride,
 * 1x1 expand x4; 1x1 downsample on the first block of each stage).
 */
#include "shapes.h"

#include "conv.h"

const qe_conv_shape qe_conv_shapes[] = {
    /* name               cin   cout  k  s  p    h   r18 r50 */
    {"conv1",               3,   64,  7, 2, 3, 224,  1,  1},
    /* stage 1, 56x56 */
    {"layer1.0.conv1",     64,   64,  3, 1, 1,  56,  4,  3},
    {"r50.layer1.0.conv1", 64,   64,  1, 1, 0,  56,  0,  1},
    {"r50.layer1.0.conv3", 64,  256,  1, 1, 0,  56,  0,  4},
    {"r50.layer1.1.conv1", 256,  64,  1, 1, 0,  56,  0,  2},
    /* stage 2, 28x28 */
    {"r18.layer2.0.conv1", 64,  128,  3, 2, 1,  56,  1,  0},
    {"r18.layer2.0.down",  64,  128,  1, 2, 0,  56,  1,  0},
    {"layer2.0.conv2",    128,  128,  3, 1, 1,  28,  3,  3},
    {"r50.layer2.0.conv1", 256, 128,  1, 1, 0,  56,  0,  1},
    {"r50.layer2.0.conv2", 128, 128,  3, 2, 1,  56,  0,  1},
    {"r50.layer2.0.conv3", 128, 512,  1, 1, 0,  28,  0,  4},
    {"r50.layer2.0.down",  256, 512,  1, 2, 0,  56,  0,  1},
    {"r50.layer2.1.conv1", 512, 128,  1, 1, 0,  28,  0,  3},
    /* stage 3, 14x14 */
    {"r18.layer3.0.conv1", 128, 256,  3, 2, 1,  28,  1,  0},
    {"r18.layer3.0.down",  128, 256,  1, 2, 0,  28,  1,  0},
    {"layer3.0.conv2",    256,  256,  3, 1, 1,  14,  3,  5},
    {"r50.layer3.0.conv1", 512, 256,  1, 1, 0,  28,  0,  1},
    {"r50.layer3.0.conv2", 256, 256,  3, 2, 1,  28,  0,  1},
    {"r50.layer3.0.conv3", 256, 1024, 1, 1, 0,  14,  0,  6},
    {"r50.layer3.0.down",  512, 1024, 1, 2, 0,  28,  0,  1},
    {"r50.layer3.1.conv1", 1024, 256, 1, 1, 0,  14,  0,  5},
    /* stage 4, 7x7 */
    {"r18.layer4.0.conv1", 256, 512,  3, 2, 1,  14,  1,  0},
    {"r18.layer4.0.down",  256, 512,  1, 2, 0,  14,  1,  0},
    {"layer4.0.conv2",    512,  512,  3, 1, 1,   7,  3,  2},
    {"r50.layer4.0.conv1", 1024, 512, 1, 1, 0,  14,  0,  1},
    {"r50.layer4.0.conv2", 512, 512,  3, 2, 1,  14,  0,  1},
    {"r50.layer4.0.conv3", 512, 2048, 1, 1, 0,   7,  0,  3},
    {"r50.layer4.0.down", 1024, 2048, 1, 2, 0,  14,  0,  1},
    {"r50.layer4.1.conv1", 2048, 512, 1, 1, 0,   7,  0,  2},
};

const int qe_conv_shape_count = (int)(sizeof qe_conv_shapes / sizeof qe_conv_shapes[0]);

int qe_conv_shape_out(const qe_conv_shape *s) { return qe_conv_out_size(s->h, s->k, s->stride, s->pad); }

double qe_conv_shape_macs(const qe_conv_shape *s, int n)
{
    double o = qe_conv_shape_out(s);
    return (double)n * o * o * s->cout * s->cin * s->k * s->k;
}
