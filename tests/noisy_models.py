"""A component module that prints when imported (as careless modules do): an ObjServer serving
it must still report its port to its factory."""

from openmdao_like import Component, Float

print('noisy_models imported: this line must go to the log, not to the factory')


class Noisy(Component):
    """y = 2 x."""

    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='out')

    def execute(self) -> None:
        self.y = 2.0 * self.x
