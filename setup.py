from setuptools import find_packages, setup

setup(
    name="funcbench",
    version="0.1.0",
    description="asv benchmarks of PyTorch's functional autograd API (torch.autograd.functional, torch.func)",
    packages=find_packages(include=["funcbench", "funcbench.*"]),
    package_data={"funcbench.catalogue": ["shard_costs.json"]},  # shard plans and the main job read it
    python_requires=">=3.10",
    # torch, torchaudio, torchvision and scipy are deliberately not pinned here: the asv
    # matrix (or the user's own environment, e.g. a local torch build) decides their versions.
    install_requires=["torch"],
    extras_require={"models": ["torchaudio", "torchvision", "scipy"]},
    entry_points={"console_scripts": ["funcbench=funcbench.commands:main"]},
)
