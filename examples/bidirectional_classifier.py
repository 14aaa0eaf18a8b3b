"""A bidirectional GRU classifier of variable-length token sequences.

    python examples/bidirectional_classifier.py

Each sequence holds 3 to 20 tokens from a vocabulary of 1..6, right-padded with 0 to a common
length. The label is 1 when the sequence ends with the token it starts with. Embedding(mask_zero=
True) turns the padding into per-sequence lengths, so the forward GRU stops at each sequence's
own last token and the backward GRU starts there: the two final states have just seen the last
and the first token, and a small Dense layer compares them.
"""

import argparse

import numpy as np

import cgru
from cgru import GRU, Bidirectional, Dense, Embedding, Sequential

VOCAB, MAX_LEN = 6, 20


def make_sequences(n, rng):
    """(n, MAX_LEN) right-padded token ids and labels; half of them positive."""
    lengths = rng.integers(3, MAX_LEN + 1, size=n)
    x = np.zeros((n, MAX_LEN), dtype=np.int64)
    y = (rng.random(n) < 0.5).astype(np.float32)
    for i, length in enumerate(lengths):
        tokens = rng.integers(1, VOCAB + 1, size=length)
        if y[i]:
            tokens[-1] = tokens[0]
        else:
            tokens[-1] = rng.choice([t for t in range(1, VOCAB + 1) if t != tokens[0]])
        x[i, :length] = tokens
    return x, y[:, None]


def main():
    parser = argparse.ArgumentParser(description="Bidirectional GRU classifier of padded sequences.")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    args = parser.parse_args()

    cgru.set_random_seed(1)
    rng = np.random.default_rng(1)
    x_train, y_train = make_sequences(3000, rng)
    x_test, y_test = make_sequences(500, rng)
    print("a batch of padded sequences (label, tokens):")
    for label, row in zip(y_train[:4, 0], x_train[:4]):
        print(f"  {int(label)}  {row}")

    model = Sequential([
        Embedding(VOCAB + 1, 8, mask_zero=True, input_shape=(MAX_LEN,)),
        Bidirectional(GRU(16)),
        Dense(32, activation="relu"),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, batch_size=32, epochs=5 if args.quick else 10, validation_split=0.1,
              verbose=2)

    loss, accuracy = model.evaluate(x_test, y_test)
    print(f"test accuracy: {accuracy:.3f} (guessing: 0.5)")
    probabilities = model.predict(x_test[:5])[:, 0]
    for p, label, row in zip(probabilities, y_test[:5, 0], x_test[:5]):
        tokens = row[row > 0]
        print(f"P(first == last) = {p:.2f}  label {int(label)}  tokens {tokens.tolist()}")


if __name__ == "__main__":
    main()
