"""The networks of the papers (models: LeNet-300-100, LeNet-5, Conv-2/4/6, VGG-19, ResNet-20, and their inits) and
the linear layer they use, which routes large products to oneDNN on AVX-512 CPUs (products)."""
