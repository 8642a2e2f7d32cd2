/*
 * shapes.h - every distinct convolution shape of torchvision ResNet18 and ResNet50 (v1.5:
 * stride on the 3x3 of a bottleneck) at 224x224, with how often each occurs per network.
 * One list drives bench_layers and the tests that sweep real layer shapes.
 */
#ifndef QE_SHAPES_H
#define QE_SHAPES_H

typedef struct qe_conv_shape {
    const char *name;      /* first layer of the shape, e.g. "layer2.0.conv1" */
    int cin, cout, k, stride, pad;
    int h;                 /* input height = width */
    int count18, count50;  /* occurrences in ResNet18 / ResNet50 */
} qe_conv_shape;

extern const qe_conv_shape qe_conv_shapes[];
extern const int qe_conv_shape_count;

/* Output height (= width) of the shape. */
int qe_conv_shape_out(const qe_conv_shape *s);
/* Multiply-adds of one occurrence at batch n. */
double qe_conv_shape_macs(const qe_conv_shape *s, int n);

#endif
