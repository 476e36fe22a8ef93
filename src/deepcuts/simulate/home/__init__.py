"""The simulated home world, beside the other simulators: listeners with true stream
probabilities for every shelf and card (`world`), and policies run against it with common random
numbers (`runs`). It imports the bandit package (policies, reward model, logging, OPE); the bandit
package never imports it."""
