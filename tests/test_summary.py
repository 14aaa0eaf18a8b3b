"""cgru.summary: the summary table's lines and sizes."""

from cgru import GRU, Dense, Sequential
from cgru.summary import readable_bytes, summary_lines


def test_sizes_read_as_keras_writes_them():
    assert readable_bytes(100) == "100.00 B"
    assert readable_bytes(1536) == "1.50 KB"
    assert readable_bytes(3 * 2**20) == "3.00 MB"
    assert readable_bytes(5 * 2**40) == "5120.00 GB"


def test_summary_prints_the_lines(capsys):
    model = Sequential([GRU(4, input_shape=(None, 3)), Dense(1)], name="m")
    model.summary()
    printed = capsys.readouterr().out.splitlines()
    lines = summary_lines(model)
    assert printed == lines and lines[0] == 'Model: "m"'
    # GRU: 3 * (3*4 + 4*4 + 2*4) = 108, Dense: 4 + 1 = 5
    assert "Total params: 113 (452.00 B)" in lines
    assert min(len(line) for line in lines if set(line) == {"_"}) == 65
