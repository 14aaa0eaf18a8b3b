"""The stacked-GRU Keras example, run by cgru: only the two import lines differ from Keras.

    python examples/keras_stacked_gru.py

Keras:  from keras.models import Sequential
        from keras.layers import GRU, Dense
"""

import numpy as np

from cgru.layers import GRU, Dense
from cgru.models import Sequential

model = Sequential()
model.add(GRU(20, return_sequences=True, input_shape=(5, 10)))
model.add(GRU(20))
model.add(Dense(1))
model.compile(optimizer="adam", loss="mse")
model.summary()

x = np.random.rand(1000, 5, 10).astype("float32")
y = x.sum(axis=(1, 2))[:, None] / 50
history = model.fit(x, y, epochs=5, batch_size=32, validation_split=0.2)
print(history.history["loss"], history.history["val_loss"])
print(model.predict(x[:3]))
