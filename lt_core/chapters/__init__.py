"""One module per chapter of the book: its claims (the paper's numbers) and the figures only it draws.
lenet_mnist: Frankle & Carbin 2019, LeNet-300-100 on MNIST."""
