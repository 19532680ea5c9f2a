"""The application: ``params.yaml`` checked once (``config``), the four pipeline steps fetch,
preprocess, train and evaluate (``steps``), and the commands that run them with one error handler
for the command line and the DVC stage scripts (``commands``)."""
