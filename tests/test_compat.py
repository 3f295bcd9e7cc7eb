"""Classic OpenMDAO models port by changing imports: classic tutorial sources, with only their
import lines rewritten, run and reach the published answers."""

import math
import textwrap

import pytest

PORTED_IMPORTS = {
    'from openmdao.main.api import': 'from openmdao_like import',
    'from openmdao.lib.datatypes.api import': 'from openmdao_like import',
    'from openmdao.lib.drivers.api import': 'from openmdao_like.compat import',
    'from openmdao.lib.doegenerators.api import': 'from openmdao_like.drivers.doe import',
}

CLASSIC_PARABOLOID = '''
from openmdao.main.api import Assembly, Component, set_as_top
from openmdao.lib.datatypes.api import Float
from openmdao.lib.drivers.api import SLSQPdriver


class Paraboloid(Component):
    """ Evaluates the equation f(x,y) = (x-3)^2 + xy + (y+4)^2 - 3 """

    x = Float(0.0, iotype='in', desc='The variable x')
    y = Float(0.0, iotype='in', desc='The variable y')
    f_xy = Float(iotype='out', desc='F(x,y)')

    def execute(self):
        x = self.x
        y = self.y
        self.f_xy = (x-3.0)**2 + x*y + (y+4.0)**2 - 3.0


class OptimizationConstrained(Assembly):
    """Constrained optimization of the Paraboloid."""

    def configure(self):
        self.add('paraboloid', Paraboloid())
        self.add('driver', SLSQPdriver())
        self.driver.workflow.add('paraboloid')
        self.driver.iprint = 0
        self.driver.accuracy = 1.0e-8
        self.driver.add_parameter('paraboloid.x', low=-50., high=50.)
        self.driver.add_parameter('paraboloid.y', low=-50., high=50.)
        self.driver.add_objective('paraboloid.f_xy')
        self.driver.add_constraint('paraboloid.x-paraboloid.y >= 15.0')


opt_problem = set_as_top(OptimizationConstrained())
'''

CLASSIC_SELLAR_MDF = '''
from openmdao.main.api import Assembly, Component, set_as_top
from openmdao.lib.datatypes.api import Float
from openmdao.lib.drivers.api import CONMINdriver, FixedPointIterator


class SellarDiscipline1(Component):
    """Component containing Discipline 1"""

    z1 = Float(0.0, iotype='in', desc='Global Design Variable')
    z2 = Float(0.0, iotype='in', desc='Global Design Variable')
    x1 = Float(0.0, iotype='in', desc='Local Design Variable')
    y2 = Float(0.0, iotype='in', desc='Disciplinary Coupling')
    y1 = Float(iotype='out', desc='Output of this Discipline')

    def execute(self):
        z1 = self.z1
        z2 = self.z2
        x1 = self.x1
        y2 = self.y2
        self.y1 = z1**2 + z2 + x1 - 0.2*y2


class SellarDiscipline2(Component):
    """Component containing Discipline 2"""

    z1 = Float(0.0, iotype='in', desc='Global Design Variable')
    z2 = Float(0.0, iotype='in', desc='Global Design Variable')
    y1 = Float(0.0, iotype='in', desc='Disciplinary Coupling')
    y2 = Float(iotype='out', desc='Output of this Discipline')

    def execute(self):
        z1 = self.z1
        z2 = self.z2
        y1 = abs(self.y1)
        self.y2 = y1**(.5) + z1 + z2


class SellarMDF(Assembly):
    """ Optimization of the Sellar problem using MDF"""

    def configure(self):
        self.add('driver', CONMINdriver())
        self.add('solver', FixedPointIterator())
        self.add('dis1', SellarDiscipline1())
        self.add('dis2', SellarDiscipline2())
        self.driver.workflow.add(['solver'])
        self.solver.workflow.add(['dis1', 'dis2'])
        self.connect('dis1.y1', 'dis2.y1')
        self.solver.add_parameter('dis1.y2', low=-9.e99, high=9.e99)
        self.solver.add_constraint('dis2.y2 = dis1.y2')
        self.solver.tolerance = 1.0e-10
        self.driver.add_parameter(('dis1.z1', 'dis2.z1'), low=-10.0, high=10.0)
        self.driver.add_parameter(('dis1.z2', 'dis2.z2'), low=0.0, high=10.0)
        self.driver.add_parameter('dis1.x1', low=0.0, high=10.0)
        self.driver.add_objective('(dis1.x1)**2 + dis1.z2 + dis1.y1 + math.exp(-dis2.y2)')
        self.driver.add_constraint('3.16 < dis1.y1')
        self.driver.add_constraint('dis2.y2 < 24.0')
        self.driver.cons_is_linear = [1, 0]
        self.driver.fdch = .001
        self.driver.delfun = .0001


prob = set_as_top(SellarMDF())
prob.dis1.z1 = prob.dis2.z1 = 5.0
prob.dis1.z2 = prob.dis2.z2 = 2.0
prob.dis1.x1 = 1.0
'''


CLASSIC_DOE = '''
from openmdao.main.api import Assembly, Component, set_as_top
from openmdao.lib.datatypes.api import Float
from openmdao.lib.drivers.api import DOEdriver
from openmdao.lib.doegenerators.api import FullFactorial


class Paraboloid(Component):
    x = Float(0.0, iotype='in')
    y = Float(0.0, iotype='in')
    f_xy = Float(iotype='out')

    def execute(self):
        self.f_xy = (self.x-3.0)**2 + self.x*self.y + (self.y+4.0)**2 - 3.0


class Analysis(Assembly):
    def configure(self):
        self.add('paraboloid', Paraboloid())
        self.add('driver', DOEdriver())
        self.driver.workflow.add('paraboloid')
        self.driver.DOEgenerator = FullFactorial(10)
        self.driver.add_parameter('paraboloid.x', low=-50, high=50)
        self.driver.add_parameter('paraboloid.y', low=-50, high=50)
        self.driver.case_outputs = ['paraboloid.f_xy']


analysis = set_as_top(Analysis())
'''

CLASSIC_GENETIC = '''
from openmdao.main.api import Assembly, Component, set_as_top
from openmdao.lib.datatypes.api import Float
from openmdao.lib.drivers.api import Genetic


class Paraboloid(Component):
    """ Evaluates the equation f(x,y) = (x-3)^2 + xy + (y+4)^2 - 3 """

    x = Float(0.0, iotype='in', desc='The variable x')
    y = Float(0.0, iotype='in', desc='The variable y')
    f_xy = Float(iotype='out', desc='F(x,y)')

    def execute(self):
        self.f_xy = (self.x-3.0)**2 + self.x*self.y + (self.y+4.0)**2 - 3.0


class GeneticOptimization(Assembly):
    """Unconstrained optimization of the Paraboloid with a genetic algorithm."""

    def configure(self):
        self.add('paraboloid', Paraboloid())
        self.add('driver', Genetic())
        self.driver.workflow.add('paraboloid')
        self.driver.add_parameter('paraboloid.x', low=-50., high=50.)
        self.driver.add_parameter('paraboloid.y', low=-50., high=50.)
        self.driver.add_objective('paraboloid.f_xy')
        self.driver.opt_type = "minimize"
        self.driver.generations = 50
        self.driver.population_size = 60
        self.driver.crossover_rate = 0.9
        self.driver.mutation_rate = 0.02
        self.driver.seed = 123


opt_problem = set_as_top(GeneticOptimization())
'''


def port(source: str) -> str:
    """What a user does to port a classic model: rewrite the import lines, nothing else."""
    for old, new in PORTED_IMPORTS.items():
        source = source.replace(old, new)
    assert 'openmdao.' not in source
    return source


def run_classic(source: str) -> dict:
    namespace: dict = {'__name__': 'classic_model'}
    exec(compile(port(textwrap.dedent(source)), 'classic_model.py', 'exec'), namespace)
    return namespace


def test_classic_paraboloid_tutorial_ports_by_changing_imports():
    ns = run_classic(CLASSIC_PARABOLOID)
    top = ns['opt_problem']
    top.run()
    assert top.paraboloid.x == pytest.approx(7.16667, abs=1e-3)
    assert top.paraboloid.y == pytest.approx(-7.83333, abs=1e-3)
    assert top.paraboloid.f_xy == pytest.approx(-27.08333, abs=1e-3)
    assert top.driver.accuracy == 1.0e-8


def test_classic_sellar_mdf_with_fixed_point_parameter_and_constraint():
    ns = run_classic(CLASSIC_SELLAR_MDF)
    prob = ns['prob']
    prob.run()
    assert prob.dis1.z1 == pytest.approx(1.9776, abs=1e-2)
    assert prob.dis1.z2 == pytest.approx(0.0, abs=1e-2)
    assert prob.dis1.x1 == pytest.approx(0.0, abs=1e-2)
    objective = prob.dis1.x1 ** 2 + prob.dis1.z2 + prob.dis1.y1 + math.exp(-prob.dis2.y2)
    assert objective == pytest.approx(3.1834, abs=1e-2)
    assert prob.dis1.y2 == pytest.approx(prob.dis2.y2, abs=1e-6)


def test_classic_component_methods():
    ns = run_classic(CLASSIC_PARABOLOID)
    top = ns['opt_problem']
    comp = top.paraboloid
    assert comp.list_inputs() == ['x', 'y']
    assert comp.list_outputs() == ['f_xy']
    assert comp.get_pathname() == 'paraboloid'
    assert comp.get_trait('x').desc == 'The variable x'
    comp.x = 3.0
    comp.revert_to_defaults()
    assert comp.x == 0.0
    with pytest.raises(RuntimeError, match=r'^paraboloid: boom$'):
        comp.raise_exception('boom', RuntimeError)
    comp.run()
    assert comp.exec_count == 1
    assert top.driver.get_parameters()['paraboloid.x'].low == -50.0


def test_classic_doe_with_doegenerator_and_case_outputs():
    top = run_classic(CLASSIC_DOE)['analysis']
    top.run()
    results = top.driver.results
    assert len(results) == 100
    assert {c.status for c in results} == {'ok'}
    first = results[0]
    assert (first.inputs['paraboloid.x'], first.inputs['paraboloid.y']) == (-50.0, -50.0)
    assert first.outputs['paraboloid.f_xy'] == pytest.approx(
        (-53.0)**2 + 2500.0 + (-46.0)**2 - 3.0)
    assert top.driver.DOEgenerator is top.driver.generator


def test_classic_genetic_ports_and_gives_best_individual():
    top = run_classic(CLASSIC_GENETIC)['opt_problem']
    top.run()
    best = top.driver.best_individual
    assert best.score == pytest.approx(-27.33333, abs=0.01)
    x, y = [value for value in best]
    assert (x, y) == pytest.approx((6.66667, -7.33333), abs=0.15)
    assert (top.paraboloid.x, top.paraboloid.y, top.paraboloid.f_xy) == (x, y, best.score)
    assert (top.driver.algorithm, top.driver.n_gen, top.driver.pop_size) == ('GA', 50, 60)
