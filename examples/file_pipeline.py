"""Components that pass files: a mesher writes a grid file, a solver reads it and writes a
binary result file, a post-processor reads that and reports a number.

Each component works in its own directory below the model's; every connected File output is
copied into the destination component's directory just before it runs. Run it with
``openmdao-like run examples/file_pipeline.py`` (the directories appear under the current
directory).
"""

import struct

from openmdao_like import Assembly, Component, File, Float, Int, set_as_top


class Mesher(Component):
    """Writes ``grid.txt``: ``n + 1`` evenly spaced points on [0, length]."""

    length = Float(1.0, iotype='in', low=0.0, exclude_low=True, units='m')
    n = Int(10, iotype='in', low=1)
    grid = File(iotype='out', local_path='grid.txt', content_type='grid')
    h = Float(iotype='out', units='m', desc='grid spacing')

    def execute(self) -> None:
        """Write the grid, one coordinate per line."""
        self.h = self.length / self.n
        with open('grid.txt', 'w') as out:
            for i in range(self.n + 1):
                out.write(f'{self.length * i / self.n!r}\n')


class Solver(Component):
    """Reads the grid, evaluates u(x) = x**2 at each point, writes the values as doubles."""

    grid = File(iotype='in', local_path='input_grid.txt', legal_types=['grid'])
    field = File(iotype='out', local_path='field.bin', binary=True, content_type='field')

    def execute(self) -> None:
        """Solve on the grid read from the input file."""
        with self.grid.open() as src:
            xs = [float(line) for line in src if line.strip()]
        with open('field.bin', 'wb') as out:
            out.write(struct.pack(f'<{len(xs)}d', *(x * x for x in xs)))


class Post(Component):
    """Integrates the field with the trapezoidal rule over an even grid of spacing ``h``."""

    field = File(iotype='in', binary=True, legal_types=['field'])
    h = Float(1.0, iotype='in', units='cm', desc='grid spacing')
    integral = Float(iotype='out', units='m**3', desc='integral of u over the domain')

    def execute(self) -> None:
        """Read the binary field and integrate it."""
        with self.field.open() as src:
            data = src.read()
        values = struct.unpack(f'<{len(data) // 8}d', data)
        h = self.h / 100.0  # cm -> m, to show that the connection converted the units
        self.integral = h * (sum(values) - 0.5 * (values[0] + values[-1]))


class FilePipeline(Assembly):
    """mesher -> solver -> post, each in a directory of its own."""

    def configure(self) -> None:
        """Add the three components in their directories and connect their files."""
        for name, comp in (('mesher', Mesher()), ('solver', Solver()), ('post', Post())):
            comp.directory = name
            self.add(name, comp)
        self.connect('mesher.grid', 'solver.grid')
        self.connect('solver.field', 'post.field')
        self.connect('mesher.h', 'post.h')
        self.driver.workflow.add(['mesher', 'solver', 'post'])
        self.driver.add_response('post.integral')


top = set_as_top(FilePipeline())
top.mesher.length = 2.0
top.mesher.n = 200
