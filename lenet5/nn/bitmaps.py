"""The fixed RBF centres: stylized 7x12 bitmaps of the digits 0-9 (paper §II.B, Fig. 3).

Each output unit i of LeNet-5 computes the squared distance between F6's 84 outputs and a fixed
vector of +1/-1 components, drawn as a 7 wide x 12 high picture of digit i. ``#`` is +1 and ``.``
is -1; rows are read top to bottom and flattened row-major into 84 components. These pictures are
drawn for this project after the style of Fig. 3; the digits' codes differ in at least 15 of the
84 components (squared distance >= 60), so no two classes are close.
"""

import numpy as np

DIGITS = {
    0: """
        .......
        ..###..
        .#...#.
        #.....#
        #.....#
        #.....#
        #.....#
        #.....#
        #.....#
        .#...#.
        ..###..
        .......""",
    1: """
        .......
        ...#...
        ..##...
        .#.#...
        ...#...
        ...#...
        ...#...
        ...#...
        ...#...
        ...#...
        .#####.
        .......""",
    2: """
        .......
        .#####.
        #.....#
        ......#
        ......#
        .....#.
        ...##..
        ..#....
        .#.....
        #......
        #######
        .......""",
    3: """
        .......
        #######
        .....#.
        ....#..
        ...#...
        ..###..
        .....#.
        ......#
        ......#
        #.....#
        .#####.
        .......""",
    4: """
        .......
        ....##.
        ...#.#.
        ..#..#.
        .#...#.
        #....#.
        #######
        .....#.
        .....#.
        .....#.
        .....#.
        .......""",
    5: """
        .......
        #######
        #......
        #......
        ######.
        ......#
        ......#
        ......#
        ......#
        #.....#
        .#####.
        .......""",
    6: """
        .......
        ....##.
        ...#...
        ..#....
        .#.....
        #.####.
        ##....#
        #.....#
        #.....#
        #.....#
        .#####.
        .......""",
    7: """
        .......
        #######
        ......#
        .....#.
        ....#..
        ...#...
        ...#...
        ..#....
        ..#....
        ..#....
        ..#....
        .......""",
    8: """
        .......
        .#####.
        #.....#
        #.....#
        #.....#
        .#####.
        #.....#
        #.....#
        #.....#
        #.....#
        .#####.
        .......""",
    9: """
        .......
        .#####.
        #.....#
        #.....#
        #.....#
        #.....#
        .######
        ......#
        ......#
        .....#.
        .####..
        .......""",
}

WIDTH, HEIGHT = 7, 12


def parse_bitmap(art: str) -> np.ndarray:
    """Text art (12 lines of 7 ``#``/``.``) -> ``(84,)`` array of +1/-1, row-major."""
    rows = [line.strip() for line in art.strip().splitlines()]
    if len(rows) != HEIGHT or any(len(r) != WIDTH or set(r) - {"#", "."} for r in rows):
        raise ValueError(f"a bitmap must be {HEIGHT} lines of {WIDTH} '#'/'.' characters")
    return np.array([1.0 if ch == "#" else -1.0 for r in rows for ch in r])


def rbf_centres(dtype="float64") -> np.ndarray:
    """The ``(10, 84)`` matrix of RBF centres, row i = digit i's bitmap."""
    return np.stack([parse_bitmap(DIGITS[d]) for d in range(10)]).astype(dtype)


def render(code: np.ndarray) -> str:
    """``(84,)`` +1/-1 code -> the 12-line text picture (for the README and error messages)."""
    grid = np.asarray(code).reshape(HEIGHT, WIDTH)  # (84,) -> (12, 7)
    return "\n".join("".join("#" if v > 0 else "." for v in row) for row in grid)
